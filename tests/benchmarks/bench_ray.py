"""Launch to first collective: ``%%distributed --executor ray -n 2`` vs a plain TorchTrainer script.

Run with Ray's venv (``.venv-ray/bin/python tests/benchmarks/bench_ray.py [--repeats 8]``): it
starts a Ray head on 127.0.0.1 (token auth off), then runs ``--repeats`` rounds of both sides,
the order swapped every round (a launch here takes ~25 s and moves by several seconds from one
to the next, so single runs or medians of three cannot tell 1 s apart).
Ours: ``mlops.distributed.run(cell, executor="ray", n=2)`` from this process (it starts its driver
subprocess, as a notebook cell does). Peer: ``python plain_script.py``, a subprocess
whose ``TorchTrainer`` runs the same all-reduce. Both measure from the moment the launch starts
to the wall-clock time rank 0 finished its first all-reduce. Printed: each side's median, and
the median of the per-round differences (ours - plain) with a bootstrap 95% interval. Target:
ours <= peer + 1 s, "met" only when the whole interval is at or under +1 s.

Most of a launch is Ray Train's own (placing workers, building the group), whose few seconds of
spread hide a difference of 1 s. So every process of both sides also notes, through an audit
hook (a ``sitecustomize`` on the bench's ``PYTHONPATH``, Ray's workers included), when it first
imports ``ray``, when it first imports ``jupyter_mlops`` and when the cell starts, and our own
steps are timed directly: "before Ray" is how much later our driver imports ``ray`` after the
launch starts than the plain script does (the kernel's job folder, our driver process, our
imports); "in the rank" is, per round, the slowest rank's time from its first import of our
package (unpickling the entry point) to the cell (an upper bound: Ray's own steps in between
count too). The bench's processes keep compiled bytecode (a cache under its temporary folder,
even where ``PYTHONDONTWRITEBYTECODE`` is set), as a pip install of Ray and of ours have.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from jupyter_mlops.distributed.job import CELL_FILENAME  # noqa: E402
from jupyter_mlops.distributed.ray_executor import DRIVER_MODULE  # noqa: E402
from tests.bench_stats import median_interval, paired_order, verdict  # noqa: E402

TARGET_S = 1.0
OUR_DRIVER_SCRIPT = DRIVER_MODULE.rsplit(".", 1)[1] + ".py"  # its sys.argv[0], run with -m
TRACE_ENV = "BENCH_RAY_TRACE"
# Loaded by every Python process of the bench (drivers and Ray's workers): one line per event
# we time, "<unix time> <pid> <script> <what>", appended to the file $BENCH_RAY_TRACE names.
SITECUSTOMIZE = f"""\
import os, sys, time
_OUT = os.environ.get({TRACE_ENV!r})
_WANTED = {{"ray": "ray", "jupyter_mlops": "ours"}}

def _note(what):
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "-"
    with open(_OUT, "a") as f:
        f.write(f"{{time.time():.6f}} {{os.getpid()}} {{script}} {{what}}\\n")

def _hook(event, args):
    if event == "import" and args[0] in _WANTED:
        _note(_WANTED[args[0]])
    elif event == "exec" and getattr(args[0], "co_filename", None) == {CELL_FILENAME!r}:
        _note("cell")

if _OUT:
    sys.addaudithook(_hook)
"""

CELL = """\
import time
import torch
import torch.distributed as dist
t = torch.ones(1)
dist.all_reduce(t)
result = time.time()
"""

PLAIN = """\
import logging, sys, time
import ray
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

def loop(config):
    import torch, torch.distributed as dist
    t = torch.ones(1)
    dist.all_reduce(t)
    if ray.train.get_context().get_world_rank() == 0:
        open(config["out"], "w").write(repr(time.time()))

ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)
TorchTrainer(loop, train_loop_config={"out": sys.argv[2]},
             scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
             run_config=RunConfig(storage_path=sys.argv[3])).fit()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def traced(trace: Path, started: float) -> list[tuple[float, int, str, str]]:
    """The events noted since ``started``: (seconds after it, pid, script, what)."""
    events = []
    for line in trace.read_text().splitlines():
        at, pid, script, what = line.split()
        if float(at) >= started:
            events.append((float(at) - started, int(pid), script, what))
    return events


def driver_imports_ray(events: list[tuple[float, int, str, str]], script: str) -> float:
    return min(at for at, _, name, what in events if what == "ray" and name == script)


def in_the_rank(events: list[tuple[float, int, str, str]]) -> float:
    """The slowest rank's seconds from its first import of our package to the cell."""
    ours_at = {pid: at for at, pid, _, what in reversed(events) if what == "ours"}
    cells = {pid: at for at, pid, _, what in events if what == "cell"}
    return max(at - ours_at[pid] for pid, at in cells.items())


def ours(address: str, home: Path) -> float:
    import jupyter_mlops.distributed as distributed
    from jupyter_mlops.config import resolve_settings

    started = time.time()
    result = distributed.run(
        CELL,
        executor="ray",
        address=address,
        n=2,
        sink=lambda line: None,
        settings=resolve_settings(env={"MLOPS_HOME": str(home)}),
    )
    return float(result.values["result"]) - started


def plain(address: str, work: Path) -> float:
    script, out = work / "plain.py", work / "first.txt"
    script.write_text(PLAIN)
    out.unlink(missing_ok=True)
    started = time.time()
    subprocess.run(
        [sys.executable, str(script), address, str(out), str(work / "ray-results")],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return float(out.read_text()) - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    setup = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    (setup / "site").mkdir()
    (setup / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    trace = setup / "trace.txt"
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.update(
        {TRACE_ENV: str(trace), "PYTHONPYCACHEPREFIX": str(setup / "pycache")},
        PYTHONPATH=os.pathsep.join(
            p for p in (str(setup / "site"), os.environ.get("PYTHONPATH")) if p
        ),
    )
    ray = Path(sys.executable).with_name("ray")
    port = free_port()
    subprocess.run(
        [str(ray), "start", "--head", "--port", str(port), "--num-cpus", "4",
         "--include-dashboard=false", "--node-ip-address", "127.0.0.1"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    times: dict[str, list[float]] = {"ours": [], "plain": []}
    before_ray: list[float] = []
    rank_steps: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for round_ in range(args.repeats):
                driver = {}
                for side in paired_order(round_, "plain", "ours"):
                    trace.write_text("")
                    started = time.time()
                    took = plain(address, work) if side == "plain" else ours(address, work / "home")
                    times[side].append(took)
                    events = traced(trace, started)
                    script = "plain.py" if side == "plain" else OUR_DRIVER_SCRIPT
                    driver[side] = driver_imports_ray(events, script)
                    if side == "ours":
                        rank_steps.append(in_the_rank(events))
                before_ray.append(driver["ours"] - driver["plain"])
                print(f"round {round_ + 1}: ours {times['ours'][-1]:.1f} s, "
                      f"plain {times['plain'][-1]:.1f} s; our steps: before Ray "
                      f"{before_ray[-1]:+.2f} s, in the rank {rank_steps[-1]:.2f} s",
                      flush=True)  # fmt: skip
    finally:
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(setup, ignore_errors=True)
    print(f"\n{'launch to first all_reduce (2 ranks)':<40} {'median s':>9} {'runs':>30}")
    for name, values in (("%%distributed --executor ray", times["ours"]),
                         ("plain TorchTrainer script", times["plain"])):  # fmt: skip
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name:<40} {statistics.median(values):>9.2f} {runs:>30}")
    differences = [a - b for a, b in zip(times["ours"], times["plain"], strict=True)]
    middle, low, high = median_interval(differences)
    ratio = statistics.median(times["ours"]) / statistics.median(times["plain"])
    print(
        f"ours - plain, median of {len(differences)} paired rounds: {middle:+.2f} s "
        f"[95% {low:+.2f}, {high:+.2f}]; target <= +{TARGET_S:.0f} s: "
        f"{verdict(low, high, TARGET_S, at_most=True)}; ratio of medians {ratio:.2f}x"
    )
    steps = [a + b for a, b in zip(before_ray, rank_steps, strict=True)]
    middle, low, high = median_interval(steps)
    print(
        f"our own steps, timed directly: before Ray {statistics.median(before_ray):+.2f} s, "
        f"in the rank {statistics.median(rank_steps):.2f} s; together {middle:+.2f} s "
        f"[95% {low:+.2f}, {high:+.2f}]; target <= +{TARGET_S:.0f} s: "
        f"{verdict(low, high, TARGET_S, at_most=True)}"
    )


if __name__ == "__main__":
    main()
