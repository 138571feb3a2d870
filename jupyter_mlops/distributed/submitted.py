"""``%distributed wait``: follow a job a scheduler runs (Slurm) until it ends; rank 0's names back.

``%%distributed sbatch`` returns once Slurm accepted the job. ``wait`` then streams the job's
output (``logs/slurm-<id>.out``, torchrun's ``[rankN]:`` lines) into the cell, asks the
scheduler how the job stands, and when it ended returns the pulled names like a local cell,
or raises the failing rank's error. The wait is bounded: ``timeout`` seconds, then a one-line
error saying the job still runs. Ctrl-C stops waiting only; the job goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..config import Settings
from ..context import current_settings
from ..errors import MLOpsUsageError
from .errors import DistributedCellError, DistributedTimeout
from .executors import get_executor
from .job import RESULT_FILE, Job, list_jobs, loads
from .logs import LogPump
from .results import DistributedResult

POLL_S = 0.2
SCHEDULER_POLL_S = 1.0
DEFAULT_WAIT_S = 3600.0


class LogFollower:
    """Feeds what scheduler log files gained since the last look to a :class:`LogPump`."""

    def __init__(self, job: Job, pump: LogPump) -> None:
        self.job = job
        self.pump = pump
        self.offsets: dict[Path, int] = {}

    def poll(self) -> None:
        for path in sorted(self.job.logs_dir.glob("slurm-*.out")):
            with path.open("rb") as f:
                f.seek(self.offsets.get(path, 0))
                chunk = f.read()
                self.offsets[path] = f.tell()
            if chunk:
                self.pump.feed_bytes(chunk)


def failed_ranks(job: Job) -> bool:
    return any(job.errors_dir.glob("rank-*.json"))


def find_submitted(home: Path, job_id: str | None) -> Job:
    jobs = [j for j in list_jobs(home) if not get_executor(j.spec.executor).waits]
    if job_id is not None:
        chosen = [j for j in jobs if j.id == job_id]
        if not chosen:
            raise MLOpsUsageError(
                f"no submitted job {job_id!r} (only sbatch jobs are waited for); "
                "see %distributed status"
            )
        return chosen[0]
    if not jobs:
        raise MLOpsUsageError("no submitted job to wait for; submit one with %%distributed sbatch")
    return jobs[-1]


def wait(
    job_id: str | None = None,
    *,
    timeout: float | None = None,
    all_logs: bool = False,
    sink: Callable[[str], None] = print,
    settings: Settings | None = None,
) -> DistributedResult:
    """Wait (at most ``timeout`` s, default an hour) for a submitted job; its pulled names."""
    from .oneshot import failure_error, result_of

    if timeout is not None and timeout <= 0:
        raise MLOpsUsageError(f"--timeout takes seconds > 0, got {timeout}")
    home = (settings or current_settings()).home
    job = find_submitted(home, job_id)
    executor = get_executor(job.spec.executor)
    started = time.monotonic()
    deadline = started + (timeout or DEFAULT_WAIT_S)
    pump = LogPump(job.logs_dir, sink, ranks=None if all_logs else (0,))
    follower = LogFollower(job, pump)
    state, asked = None, 0.0
    try:
        while True:
            follower.poll()
            if time.monotonic() - asked >= SCHEDULER_POLL_S:
                state, asked = executor.scheduler_state(job), time.monotonic()
            if state in ("done", "failed", "cancelled"):
                break
            if state is None and (failed_ranks(job) or (job.dir / RESULT_FILE).exists()):
                break  # a scheduler that no longer knows the job: its folder tells
            if time.monotonic() > deadline:
                raise DistributedTimeout(
                    f"job {job.id} still runs after waiting {timeout or DEFAULT_WAIT_S:g} s "
                    f"(scheduler state: {state or 'unknown'}); wait again, or "
                    f"%distributed cancel {job.id}",
                    job_id=job.id,
                )
            time.sleep(POLL_S)
        follower.poll()
    finally:
        pump.close()
    if failed_ranks(job):
        job.set_state("failed")
        raise failure_error(job, 1, list(pump.agent_tail))
    if (job.dir / RESULT_FILE).exists():
        job.set_state("ok", exit_code=0)
        values = loads((job.dir / RESULT_FILE).read_bytes())
        return result_of(
            job, "ok", values, time.monotonic() - started, job.state().get("slurm_job_id")
        )
    if state == "cancelled":
        job.set_state("cancelled")
        raise DistributedCellError(
            f"job {job.id} was cancelled at the scheduler before it finished", job_id=job.id
        )
    job.set_state("failed")
    raise failure_error(job, 1, list(pump.agent_tail))
