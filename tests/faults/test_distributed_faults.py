"""%%distributed under real faults: a hung collective, a rank that dies, Ctrl-C, a typo.

Real torchrun agents with 2 gloo ranks on CPU and a real ipykernel. One pool and one kernel are
shared by the tests of this module (each start costs seconds); every test checks that no process
of its jobs outlives them.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from jupyter_client.manager import KernelManager

import jupyter_mlops as mlops
from jupyter_mlops.config import resolve_settings
from jupyter_mlops.context import current_settings
from jupyter_mlops.distributed import DistributedCellError, DistributedTimeout, pool
from tests.process_support import survivors

POOL_TIMEOUT_S = 3
HUNG = (
    "import torch, torch.distributed as dist\nif rank == 0:\n    dist.all_reduce(torch.ones(1))\n"
)
# Rank 1 dies between two collectives, without a Python exception; rank 0 then fails inside
# the second one ("connection closed by peer"): it must not be blamed.
DEATHS = {  # the pool test uses os._exit too; signal names are unit-tested
    "os._exit": ("os._exit(3)", "exited with code 3"),
    "SIGKILL": ("os.kill(os.getpid(), signal.SIGKILL)", "was killed by signal 9 (SIGKILL)"),
}

# Our own frames (the helper the cell called) and what gloo adds to a peer's disconnection.
NOISE = ("jupyter_mlops/", "helpers.py", "pair.cc", "GLHF", "typically caused", "raised from")


def dying_cell(death: str) -> str:
    return (
        "import os, signal, torch, torch.distributed as dist\n"
        "dist.barrier()\n"
        "if rank == 1:\n"
        "    print('rank 1 going', flush=True)\n"
        f"    {death}\n"
        "dist.all_reduce(torch.ones(1))\n"
    )


def job_processes(job_dir: Path) -> list[int]:
    """Every live process whose command line names the job folder (registered or not)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] != psutil.STATUS_ZOMBIE and str(job_dir) in cmdline:
            found.append(process.pid)
    return found


def running_pool_pids() -> list[int]:
    running = pool.running()
    assert running is not None
    return [running.agent.pid, *running.pids.values()]


@pytest.fixture(scope="module")
def started_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """A pool started with ``--timeout 3``; every pid it ever had must be gone at the end."""
    settings = resolve_settings(tmp_path_factory.mktemp("pool"), env={})
    pool.start(2, backend="gloo", timeout=POOL_TIMEOUT_S, settings=settings)
    seen = running_pool_pids()
    try:
        yield seen
    finally:
        pool.stop()
    assert survivors(seen, 10) == []


@pytest.fixture
def warm_pool(started_pool: list[int]) -> list[int]:
    """The shared pool, restarted if the test before left it stuck."""
    if pool.status().state == "stuck":
        pool.restart()
        started_pool.extend(running_pool_pids())
    return started_pool


def hung_cell_seconds() -> float:
    began = time.monotonic()
    with pytest.raises(DistributedTimeout, match=f"ran past --timeout {POOL_TIMEOUT_S} s"):
        mlops.distributed.run(HUNG, sink=lambda line: None)
    return time.monotonic() - began


def test_pool_timeout_fires_at_the_time_given_to_pool_start(warm_pool: list[int]) -> None:
    assert POOL_TIMEOUT_S <= hung_cell_seconds() < 4 * POOL_TIMEOUT_S
    assert pool.status().state == "stuck"


def test_pool_rank_that_dies_is_named_not_the_survivor(warm_pool: list[int]) -> None:
    before = running_pool_pids()
    shown: list[str] = []
    with pytest.raises(DistributedCellError) as caught:
        mlops.distributed.run(dying_cell("os._exit(3)"), sink=shown.append)
    error = caught.value
    assert error.rank == 1
    assert str(error).startswith("rank 1 of 2 exited with code 3 without raising a Python error")
    assert "so the pool was restarted" in str(error)
    assert "rank 1 going" in error.remote_traceback  # its last output stands in for a traceback
    assert all(f.rank == 0 for f in error.others)  # the survivor's failure is only a consequence
    assert survivors(before, 10) == []
    warm_pool.extend(running_pool_pids())
    assert mlops.distributed.run("result = world_size")["result"] == 2  # the restarted pool works
    # The pool restarted itself with the timeout it was started with.
    assert POOL_TIMEOUT_S <= hung_cell_seconds() < 4 * POOL_TIMEOUT_S


@pytest.mark.parametrize("how", list(DEATHS))
def test_one_shot_rank_that_dies_is_named_not_the_survivor(how: str) -> None:
    death, summary = DEATHS[how]
    with pytest.raises(DistributedCellError) as caught:
        mlops.distributed.run(dying_cell(death), n=2, fresh=True, sink=lambda line: None)
    error = caught.value
    assert error.rank == 1, str(error)
    assert str(error).startswith(f"rank 1 of 2 {summary} without raising a Python error (job ")
    assert all(f.rank == 0 for f in error.others)
    (row,) = mlops.distributed.status().jobs
    assert row.state == "failed"
    assert job_processes(current_settings().home / "jobs" / row.job_id) == []


def test_a_rank_failing_at_once_streams_no_gloo_or_c10d_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rank 1 raises before any collective; rank 0's native log lines stay in its log file.

    TORCH_CPP_LOG_LEVEL=INFO makes c10d print its own lines on every start, so what gloo prints
    after a peer left early (seen sometimes, by timing) is certain here.
    """
    monkeypatch.setenv("TORCH_CPP_LOG_LEVEL", "INFO")
    shown: list[str] = []
    cell = "import torch.distributed as dist\nif rank == 1:\n    raise ValueError('early')\n"
    with pytest.raises(DistributedCellError, match="rank 1 of 2 failed: ValueError: early"):
        mlops.distributed.run(cell + "dist.barrier()\n", n=2, fresh=True, sink=shown.append)
    (row,) = mlops.distributed.status().jobs
    logs = current_settings().home / "jobs" / row.job_id / "logs"
    native = re.compile(r"\S+\.(?:cc|cpp|h|hpp):\d+\]")
    assert any(native.search(line) for line in (logs / "rank-0.log").read_text().splitlines())
    assert [line for line in shown if native.search(line)] == []


# --- through a real kernel ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KernelManager, Any, Path]]:
    home = tmp_path_factory.mktemp("kernel")
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(home), env={**os.environ, "MLOPS_HOME": str(home)})
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        assert execute(client, "%load_ext jupyter_mlops")["reply"]["status"] == "ok"
        yield manager, client, home
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def execute(client: Any, code: str, on_output: Any = None) -> dict[str, Any]:
    return collect(client, client.execute(code), on_output)


def collect(client: Any, msg_id: str, on_output: Any = None) -> dict[str, Any]:
    """The cell's reply, and every stream text and error line it showed (bounded: 60 s)."""
    shown: list[str] = []
    reply: dict[str, Any] | None = None
    idle = False
    deadline = time.monotonic() + 60
    while reply is None or not idle:
        assert time.monotonic() < deadline, "the cell did not finish within 60 s"
        if reply is None and client.shell_channel.msg_ready():
            message = client.get_shell_msg(timeout=1)
            if message["parent_header"].get("msg_id") == msg_id:
                reply = message["content"]
        if not client.iopub_channel.msg_ready():
            time.sleep(0.02)
            continue
        message = client.get_iopub_msg(timeout=1)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            shown.append(content["text"])
            if on_output is not None:
                on_output(content["text"])
        elif kind == "error":
            shown.append("\n".join(content["traceback"]))
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    return {"reply": reply, "shown": "".join(shown)}


def jobs_of(home: Path) -> set[Path]:
    return set((home / "jobs").glob("*")) if (home / "jobs").exists() else set()


def wait_for(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        time.sleep(0.05)


def agent_started(home: Path, known: set[Path]) -> bool:
    return any((j / "state.json").exists() for j in jobs_of(home) - known)


SLEEPER = "%%distributed -n 2\nimport time\nprint('ready', flush=True)\ntime.sleep(120)\n"


@pytest.mark.parametrize("moment", ["while the ranks start", "while the cell runs"])
def test_ctrl_c_says_one_line_and_stops_every_rank(
    kernel: tuple[KernelManager, Any, Path], moment: str
) -> None:
    manager, client, home = kernel
    known = jobs_of(home)
    if moment == "while the ranks start":  # the agent runs; the ranks are importing torch
        msg_id = client.execute(SLEEPER)
        wait_for(lambda: agent_started(home, known), 30)
        manager.interrupt_kernel()
        outcome = collect(client, msg_id)
    else:

        def interrupt_once_ready(text: str) -> None:
            if "[rank 0] ready" in text:
                manager.interrupt_kernel()

        outcome = execute(client, SLEEPER, on_output=interrupt_once_ready)
    (job_dir,) = jobs_of(home) - known
    reply = outcome["reply"]
    line = f"KeyboardInterrupt: job {job_dir.name} cancelled, all ranks stopped"
    assert (reply["status"], reply["ename"]) == ("error", "DistributedCancelled")
    assert reply["traceback"] == [line]
    assert "Traceback" not in outcome["shown"] and outcome["shown"].endswith(line)
    assert job_processes(job_dir) == []  # stopped before the cell returned, unregistered too
    assert json.loads((job_dir / "state.json").read_text())["state"] == "cancelled"


def test_syntax_error_is_a_usage_error_before_any_rank_starts(
    kernel: tuple[KernelManager, Any, Path],
) -> None:
    _, client, home = kernel
    known = jobs_of(home)
    outcome = execute(client, "%%distributed -n 2\nx = 1\nresult = (x +\n")
    reply = outcome["reply"]
    message = (
        "%distributed: the cell does not compile, line 2: SyntaxError: "
        "'(' was never closed: result = (x +"
    )
    assert (reply["status"], reply["ename"], reply["evalue"]) == ("error", "UsageError", message)
    assert outcome["shown"].strip() == f"UsageError: {message}"  # one line, no traceback
    assert jobs_of(home) == known  # refused before a job folder or a process existed


def test_worker_error_shows_the_cell_not_our_frames_or_gloo_noise(
    kernel: tuple[KernelManager, Any, Path],
) -> None:
    _, client, home = kernel
    known = jobs_of(home)
    outcome = execute(
        client,
        "%%distributed -n 2\n"
        "import torch, torch.distributed as dist\n"
        "import jupyter_mlops as mlops\n"
        "if rank == 1:\n"
        "    model = mlops.distributed.ddp(torch.nn.Linear(2, 1), bucket_cap=25)\n"
        "dist.barrier()\n",
    )
    (job_dir,) = jobs_of(home) - known
    reply = outcome["reply"]
    assert reply["ename"] == "DistributedCellError"
    shown = reply["traceback"]
    assert shown[0] == (
        "DistributedCellError: rank 1 of 2 failed: TypeError: DistributedDataParallel.__init__() "
        f"got an unexpected keyword argument 'bucket_cap' (job {job_dir.name})"
    )
    assert '  File "<cell>", line 4, in <module>' in shown, shown  # the cell's own line number
    text = "\n".join(shown) + outcome["shown"]
    for noise in NOISE:
        assert noise not in text, noise
    assert job_processes(job_dir) == []


# A resumable FSDP2 job of 2 ranks: 8 steps, a DCP checkpoint after each; every line says how far
# the rank got, so the test can kill at a moment that falls anywhere in a step or a save.
RESUMABLE = """
import time, torch, jupyter_mlops as mlops
from tests import parallel_support as ps

model = mlops.distributed.fsdp(ps.make_model(), block_cls=ps.Block)
optim = ps.make_optimizer(model, adam=True)
state = {"model": model, "optim": optim, "losses": []}
last = mlops.distributed.load(state)
for step in range(0 if last is None else last + 1, 8):
    state["losses"] = state["losses"] + [ps.sharded_step(model, optim, step, rank, world_size)]
    mlops.distributed.save(state, step)
    print(f"attempt {restart} step {step}", flush=True)
    time.sleep(0.3)
losses = state["losses"]
"""


def test_ranks_sigkilled_at_random_moments_of_two_attempts_resume_the_same_curve() -> None:
    """--max-restarts 2: in attempts 0 and 1 a random rank is SIGKILLed at a random moment
    after a random step (mid-step, mid-save or asleep); the job still ends with the loss curve
    of one uninterrupted process, and no process outlives it."""
    import random
    import signal as signals

    from tests.parallel_support import reference_losses

    chooser = random.Random()
    plan = {attempt: (chooser.randrange(2), chooser.randrange(1, 5)) for attempt in (0, 1)}
    killed: list[tuple[int, int]] = []

    def kill_on_cue(line: str) -> None:
        match = re.fullmatch(r"\[rank 0\] attempt (\d) step (\d)", line)
        if match is None:
            return
        attempt, step = int(match.group(1)), int(match.group(2))
        if attempt in plan and plan[attempt][1] <= step and len(killed) == attempt:
            victim = plan[attempt][0]
            (job_dir,) = (current_settings().home / "jobs").iterdir()
            time.sleep(chooser.uniform(0, 0.4))  # anywhere in the next step, save or sleep
            entry = json.loads((job_dir / "pids" / f"rank-{victim}.json").read_text())
            os.kill(entry["pid"], signals.SIGKILL)
            killed.append((victim, entry["pid"]))

    out = mlops.distributed.run(RESUMABLE, n=2, max_restarts=2, pull="losses", sink=kill_on_cue)
    assert len(killed) == 2 and len(out.restarts) == 2, (killed, out.restarts, plan)
    expected = reference_losses(steps=8, adam=True)
    worst = max(abs(a - b) for a, b in zip(out["losses"], expected, strict=True))
    assert worst < 1e-5, (out["losses"], expected, plan)
    for (victim, _), reason in zip(killed, out.restarts, strict=True):
        assert f"rank {victim} of 2 was killed by signal 9 (SIGKILL)" in reason, reason
    assert job_processes(out.job_dir) == []
