"""``%%distributed --executor ray`` scenarios, run by ``.venv-ray``'s python (Ray lives there).

``python tests/ray_scenarios.py ADDRESS HOME``: an IPython shell with ``%load_ext jupyter_mlops``
runs each scenario against the Ray cluster at ADDRESS and prints one JSON line per scenario;
tests/test_distributed_ray.py starts the cluster and checks the lines.
"""

from __future__ import annotations

import _thread
import contextlib
import io
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

CELL = """\
import torch
import torch.distributed as dist
t = torch.tensor([rank + 1.0])
dist.all_reduce(t)
print(f"hello from {rank} of {world_size} on {device.type}, a={a}", flush=True)
result = (t.item(), world_size, a * 2)
"""
FAILING = "x = 1\nif rank == 1:\n    raise ValueError('rank one is broken')\n"
HANGING = "import time\nprint('started', flush=True)\ntime.sleep(600)\n"
BOUND_S = 120.0


def shell() -> Any:
    from IPython.testing.globalipapp import start_ipython

    import jupyter_mlops

    ip = start_ipython()
    jupyter_mlops.load_ipython_extension(ip)
    return ip


def live_actors(address: str) -> list[str]:
    """Ray Train's actors still alive in the cluster (asked from the GCS: no dashboard here)."""
    import logging

    import ray
    from ray._private import state

    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    names = [
        str(info.get("ActorClassName", ""))
        for info in state.actors().values()
        if info.get("State") not in ("DEAD", 4)
    ]
    return [n for n in names if n.endswith(("RayTrainWorker", "TrainController"))]


def succeeds(ip: Any, flags: str) -> dict[str, Any]:
    ip.user_ns["a"] = 21
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = ip.run_cell_magic("distributed", f"{flags} -n 2 --push a", CELL)
    return {
        "state": result.state,
        "result": list(ip.user_ns["result"]),
        "shown": [line for line in out.getvalue().splitlines() if line.startswith("[rank")],
        "rank1_log": (result.job_dir / "logs" / "rank-1.log").read_text(),
    }


def fails(ip: Any, flags: str) -> dict[str, Any]:
    from jupyter_mlops.distributed import DistributedCellError

    try:
        ip.run_cell_magic("distributed", f"{flags} -n 2", FAILING)
    except DistributedCellError as exc:
        return {"rank": exc.rank, "message": str(exc)}
    return {"rank": None, "message": "did not raise"}


def interrupted(ip: Any, flags: str, home: Path, address: str) -> dict[str, Any]:
    from jupyter_mlops.distributed import DistributedCancelled

    before = {p.name for p in (home / "jobs").iterdir()} if (home / "jobs").exists() else set()

    def interrupt_when_started() -> None:
        deadline = time.monotonic() + BOUND_S
        while time.monotonic() < deadline:
            for job in (home / "jobs").glob("*"):
                log = job / "logs" / "rank-0.log"
                if job.name not in before and log.exists() and "started" in log.read_text():
                    _thread.interrupt_main()
                    return
            time.sleep(0.2)

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    outcome = "did not raise"
    started = time.monotonic()
    try:
        ip.run_cell_magic("distributed", f"{flags} -n 2", HANGING)
    except DistributedCancelled as exc:
        outcome = str(exc)
    job_id = sorted({p.name for p in (home / "jobs").iterdir()} - before)[-1]
    deadline = time.monotonic() + BOUND_S
    while (left := live_actors(address)) and time.monotonic() < deadline:
        time.sleep(0.5)
    status = ip.run_line_magic("distributed", "status")
    return {
        "outcome": outcome,
        "seconds": time.monotonic() - started,
        "actors_left": left,
        "state": {j.job_id: j.state for j in status.jobs}[job_id],
    }


def main(address: str, home: str) -> None:
    import os
    import signal

    os.environ["MLOPS_HOME"] = home
    # Ctrl-C raises KeyboardInterrupt, as in a kernel. A process started in the background by a
    # shell without job control inherits SIGINT ignored, and then interrupt_main does nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ip = shell()
    flags = f"--executor ray --address {address}"
    scenarios: dict[str, Callable[[], dict[str, Any]]] = {
        "succeeds": lambda: succeeds(ip, flags),
        "fails": lambda: fails(ip, flags),
        "interrupted": lambda: interrupted(ip, flags, Path(home), address),
    }
    for name, scenario in scenarios.items():
        try:
            line = {"scenario": name, **scenario()}
        except BaseException:
            line = {"scenario": name, "error": traceback.format_exc()}
        print("SCENARIO " + json.dumps(line), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
