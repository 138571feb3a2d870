"""A one-shot job: write the job folder, launch the agent, watch it, collect or explain.

The cell waits on the agent from its own thread, pumping the agent's output into the cell
(``select`` with a short timeout keeps Ctrl-C responsive). An interrupt, a ``--timeout`` or any
other exit from the wait stops every process of the job before the cell returns.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import (
    DistributedCancelled,
    DistributedCellError,
    DistributedTimeout,
    RankExit,
    RankFailure,
    rank_error,
    restart_message,
)
from .executors import get_executor, join_command
from .job import RESULT_FILE, Job, JobSpec, create_job, loads
from .job_logging import log_to_run
from .logs import LogPump
from .procs import alive, owned, signal_group, stop
from .results import DistributedResult


def run_job(
    home: Path,
    source: str,
    spec: JobSpec,
    values: Mapping[str, Any],
    *,
    all_logs: bool,
    sink: Callable[[str], None],
    on_status: Callable[[str], None] | None,
) -> DistributedResult:
    """Run ``source`` as a new job of ``spec``; logged to its MLflow run when the spec names one."""
    job = create_job(home, source, spec, values)
    engine = get_executor(spec.executor)
    started = time.monotonic()
    launched = engine.launch(job)
    if isinstance(launched, str):  # a scheduler's job id, or the path of an exported manifest
        state = "exported" if spec.options.get("export") else "submitted"
        job.set_state(state, slurm_job_id=launched)
        sink(f"[jupyter-mlops] {state} {spec.executor} job {launched}; logs: {job.logs_dir}")
        return result_of(job, state, {}, 0.0, scheduler_id=launched)
    pump = LogPump(job.logs_dir, sink, ranks=None if all_logs else (0,))
    try:
        job.set_state("running", agent_pid=launched.pid, host=os.uname().nodename)
        if spec.nnodes > 1:
            sink(
                f"[jupyter-mlops] waiting for {spec.nnodes - 1} more node(s); on each, run:\n"
                f"{join_command(job)}"
            )
        status = RankStatus(job, on_status, sink)
        code = watch(launched, job, pump, spec.timeout, status)
    except KeyboardInterrupt:
        left = stop_local(launched, job, pump)
        job.set_state("cancelled")
        raise DistributedCancelled(
            f"job {job.id} cancelled, all ranks stopped"
            if not left
            else f"job {job.id} cancelled; process(es) {', '.join(map(str, left))} did not stop, "
            "see %distributed status"
        ) from None
    except BaseException:
        if launched.poll() is None:  # failed before watch() took charge of stopping
            stop_local(launched, job, pump)
        raise
    finally:
        pump.close()
        if launched.stdout is not None:
            launched.stdout.close()
        if spec.mlflow_run_id is not None:
            log_to_run(job, spec.mlflow_run_id, spec.mlflow_tracking_uri or "")
    if code != 0:
        job.set_state("failed", exit_code=code, restarts=len(status.restarts))
        raise failure_error(job, code, list(pump.agent_tail), len(status.restarts))
    pulled = loads((job.dir / RESULT_FILE).read_bytes())
    job.set_state("ok", exit_code=0, restarts=len(status.restarts))
    result = result_of(job, "ok", pulled, time.monotonic() - started)
    result.restarts = list(status.restarts)
    return result


def result_of(
    job: Job, state: str, values: dict[str, Any], seconds: float, scheduler_id: str | None = None
) -> DistributedResult:
    return DistributedResult(
        job_id=job.id,
        state=state,
        world_size=job.spec.world_size,
        nnodes=job.spec.nnodes,
        backend=job.spec.backend,
        executor=job.spec.executor,
        job_dir=job.dir,
        values=values,
        seconds=seconds,
        scheduler_id=scheduler_id,
    )


class RankStatus:
    """Tells ``on_status`` each rank's state when it changes, at most every half second, and
    ``sink`` each restart torchrun made (``--max-restarts``) with the reason."""

    def __init__(
        self, job: Job, on_status: Callable[[str], None] | None, sink: Callable[[str], None]
    ) -> None:
        self.job = job
        self.on_status = on_status
        self.sink = sink
        self.restarts: list[str] = []
        self.shown = ""
        self.checked = 0.0

    def poll(self, *, final: bool = False) -> None:
        if not final and time.monotonic() - self.checked < 0.5:
            return
        self.checked = time.monotonic()
        if self.job.spec.max_restarts:
            for entry in self.job.restarts()[len(self.restarts) :]:
                self.restarts.append(restart_message(self.job, entry))
                self.sink(f"[jupyter-mlops] {self.restarts[-1]}")
        if self.on_status is None:
            return
        states = self.job.rank_states()
        text = f"ranks started {len(states)}/{self.job.spec.world_size}: " + (
            ", ".join(f"{rank} {state}" for rank, state in states.items()) or "waiting"
        )
        if text != self.shown:
            self.shown = text
            self.on_status(text)


def watch(
    agent: subprocess.Popen[bytes],
    job: Job,
    pump: LogPump,
    timeout: float | None,
    status: RankStatus,
) -> int:
    """Pump the agent's output until it exits; at the timeout stop every process.

    Any other way out (Ctrl-C, an error) leaves the stopping to :func:`run_job`.
    """
    assert agent.stdout is not None
    fd = agent.stdout.fileno()
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                code = agent.wait()
                status.poll(final=True)
                return code
            pump.feed_bytes(chunk)
        status.poll()
        if deadline is not None and time.monotonic() > deadline:
            break
    stop_local(agent, job, pump)
    job.set_state("timeout")
    raise DistributedTimeout(
        f"job {job.id} ran past --timeout {timeout:g} s; every rank was stopped",
        job_id=job.id,
    )


def stop_local(agent: subprocess.Popen[bytes], job: Job, pump: LogPump) -> list[int]:
    """Stop the agent and every worker (a second Ctrl-C skips to SIGKILL); the pids left."""
    assert agent.stdout is not None
    fd = agent.stdout.fileno()
    os.set_blocking(fd, False)
    pump.mute()

    def pids() -> list[int]:
        return [agent.pid, *job.worker_pids().values()]

    def keep_draining() -> None:
        agent.poll()
        try:
            while chunk := os.read(fd, 65536):
                pump.feed_bytes(chunk)
        except (BlockingIOError, OSError):
            pass

    try:
        left = stop(pids, str(job.dir), first=agent.pid, on_wait=keep_draining)
    except KeyboardInterrupt:
        for pid in pids():
            if alive(pid) and owned(pid, str(job.dir)):
                signal_group(pid, signal.SIGKILL)
        left = []
    with contextlib.suppress(subprocess.TimeoutExpired):
        agent.wait(timeout=5)
    return [p for p in left if alive(p) and owned(p, str(job.dir))]


def rank_failures(job: Job) -> list[RankFailure]:
    reports = [json.loads(p.read_text()) for p in job.errors_dir.glob("rank-*.json")]
    return [RankFailure(**r) for r in reports]


def failure_error(
    job: Job, code: int, agent_tail: list[str], restarts: int = 0
) -> DistributedCellError:
    """The rank that caused the failure (see :func:`rank_error`), else the agent's own end."""
    exits = [RankExit(rank, exitcode) for rank, exitcode in job.rank_exits().items()]
    note = f", after {restarts} restart(s)" if restarts else ""
    error = rank_error(job, "job", rank_failures(job), exits, note)
    if error is not None:
        return error
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return DistributedCellError(
        f"the torchrun agent {how} before any rank reported an error (job {job.id}); "
        f"its last lines (full log: {job.logs_dir / 'agent.log'}):",
        job_id=job.id,
        traceback="\n".join(agent_tail[-15:]),
    )
