"""torchrun tied to the kernel: ``python -m jupyter_mlops.distributed.agent PARENT JOB -- ARGS``.

It asks for SIGKILL when its parent (the kernel) dies, so a kernel restart or crash stops the
agent, and the workers' own PDEATHSIG then stops every rank. Doing this here
rather than in a ``preexec_fn`` keeps the (multi-threaded) kernel from running Python between
fork and exec. When ranks fail, it writes how each one ended to ``errors/exits.json``: a rank
that died without a Python error (``os._exit``, a crash, the OOM killer) leaves nothing else.

With ``--max-restarts K`` torchrun's agent restarts the whole worker group when a rank fails.
Before each restart this wrapper appends what happened to ``errors/restarts.jsonl`` (the
attempt, each failed rank's exit code or -signal) and moves that attempt's ``rank-N.json``
reports to ``errors/attempt-K/``, so the notebook can say why it restarted and the final error
names only the last attempt's ranks.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import time
from pathlib import Path
from typing import Any

from .job import EXITS_FILE, RESTARTS_FILE, write_atomic
from .procs import die_with_parent


def record_restarts(errors_dir: Path) -> None:
    """Note each failed attempt that torchrun's agent is about to restart (see the docstring).

    The failure is seen in ``_monitor_workers`` and written in ``_initialize_workers``, after
    the agent stopped the attempt's other ranks, so their late reports move with it.
    """
    from torch.distributed.elastic.agent.server.api import WorkerState
    from torch.distributed.elastic.agent.server.local_elastic_agent import LocalElasticAgent

    if not all(hasattr(LocalElasticAgent, n) for n in ("_monitor_workers", "_initialize_workers")):
        return  # another torch: restarts still happen, only unexplained in the notebook
    monitor, initialize = LocalElasticAgent._monitor_workers, LocalElasticAgent._initialize_workers
    pending: list[dict[str, Any]] = []

    def monitored(agent: Any, group: Any) -> Any:
        result = monitor(agent, group)
        failed = result.state in (WorkerState.FAILED, WorkerState.UNHEALTHY)
        if failed and getattr(agent, "_remaining_restarts", 0) > 0:
            spec = group.spec
            pending[:] = [
                {
                    "attempt": spec.max_restarts - agent._remaining_restarts,
                    "restarts_left": agent._remaining_restarts - 1,
                    "max_restarts": spec.max_restarts,
                    "time": time.time(),
                    "exits": {str(r): f.exitcode for r, f in result.failures.items()},
                }
            ]
        return result

    def initialized(agent: Any, group: Any) -> Any:
        if pending:
            entry = pending.pop()
            moved = errors_dir / f"attempt-{entry['attempt']}"
            moved.mkdir(exist_ok=True)
            for report in errors_dir.glob("rank-*.json"):
                report.replace(moved / report.name)
            with (errors_dir / RESTARTS_FILE).open("a") as out:
                out.write(json.dumps(entry) + "\n")
        return initialize(agent, group)

    setattr(LocalElasticAgent, "_monitor_workers", monitored)  # noqa: B010
    setattr(LocalElasticAgent, "_initialize_workers", initialized)  # noqa: B010


def main(argv: list[str]) -> None:
    parent, job_dir, separator, *torchrun_args = argv
    if separator != "--":
        raise SystemExit(
            "usage: python -m jupyter_mlops.distributed.agent PARENT_PID JOB_DIR -- ARGS"
        )
    die_with_parent()
    if os.getppid() != int(parent):  # the kernel died before prctl took effect
        raise SystemExit(1)
    sys.argv = ["torchrun", *torchrun_args]
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    record_restarts(Path(job_dir) / "errors")
    try:
        runpy.run_module("torch.distributed.run", run_name="__main__", alter_sys=True)
    except ChildFailedError as failed:
        exits = {rank: failure.exitcode for rank, failure in failed.failures.items()}
        write_atomic(Path(job_dir) / "errors" / EXITS_FILE, json.dumps(exits).encode())
        raise


if __name__ == "__main__":
    main(sys.argv[1:])
