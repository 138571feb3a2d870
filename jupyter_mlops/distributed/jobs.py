"""The job folders of a store: what each job is doing now, and stopping the ones that still run.

``%distributed status`` and ``%distributed cancel`` read the folders, not the kernel's memory,
so they also see jobs started by another kernel or lost with a kernel that died.
"""

from __future__ import annotations

import os

from ..config import Settings
from ..context import current_settings
from ..errors import MLOpsUsageError
from .executors import get_executor
from .job import RESULT_FILE, Job, list_jobs
from .procs import alive, owned
from .results import DistributedStatus, JobRow
from .stats import read_stats

# A scheduler's answer (Executor.scheduler_state) as a status row's state; "done" without
# rank 0's result file means the job ended before the cell did.
SCHEDULER_STATES = {
    "running": "running",
    "done": "failed",
    "failed": "failed",
    "cancelled": "cancelled",
}


def job_row(job: Job) -> JobRow:
    state = job.state()
    name = state["state"]
    pids = list(job.worker_pids().values())
    if state.get("agent_pid") and state.get("host") == os.uname().nodename:
        pids.append(state["agent_pid"])
    live = sum(1 for p in pids if alive(p) and owned(p, str(job.dir)))
    if name == "running" and not live:
        name = "lost"
    if name == "submitted":
        if any(job.errors_dir.glob("rank-*.json")):  # rank 0 may have saved its result first
            name = "failed"
        elif (job.dir / RESULT_FILE).exists():
            name = "ok"
        else:  # what the scheduler says: queued stays "submitted"
            at_scheduler = get_executor(job.spec.executor).scheduler_state(job)
            name = SCHEDULER_STATES.get(at_scheduler or "", name)
    return JobRow(
        job.id,
        name,
        job.spec.world_size,
        job.spec.backend,
        job.spec.executor,
        live,
        restarts=len(job.restarts()),
        ranks=tuple(read_stats(job.dir)),
    )


def status(limit: int = 20, settings: Settings | None = None) -> DistributedStatus:
    """The newest ``limit`` jobs of this store and how many of their processes still run."""
    home = (settings or current_settings()).home
    return DistributedStatus([job_row(j) for j in reversed(list_jobs(home)[-limit:])])


def cancel(job_id: str | None = None, settings: Settings | None = None) -> DistributedStatus:
    """Stop one job, or every job that still has processes or a queued scheduler job."""
    home = (settings or current_settings()).home
    jobs = {j.id: j for j in list_jobs(home)}
    if job_id is not None and job_id not in jobs:
        raise MLOpsUsageError(f"no distributed job {job_id!r}; see %distributed status")
    targets = [jobs[job_id]] if job_id else list(jobs.values())
    cancelled = []
    for job in targets:
        row = job_row(job)
        if row.live_processes or row.state in ("submitted", "running"):
            get_executor(job.spec.executor).cancel(job)
            job.set_state("cancelled")
            cancelled.append(job.id)
    result = status(settings=settings)
    result.cancelled = cancelled
    return result
