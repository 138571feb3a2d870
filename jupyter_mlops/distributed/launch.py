"""Running a cell as a distributed job: plan, write the job folder, launch, watch, collect.

The cell waits on the agent from its own thread, pumping the agent's output into the cell
(``select`` with a short timeout keeps Ctrl-C responsive). An interrupt, a ``--timeout`` or any
other exit from the wait stops every process of the job before the cell returns.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..config import Settings
from ..context import current_settings, user_namespace
from ..errors import MLOpsUsageError
from .errors import (
    DistributedCancelled,
    DistributedCellError,
    DistributedTimeout,
    RankExit,
    RankFailure,
    rank_error,
)
from .executors import EXECUTORS, get_executor, join_command
from .job import RESULT_FILE, Job, JobSpec, create_job, list_jobs, loads
from .logs import LogPump
from .procs import alive, owned, signal_group, stop
from .results import DistributedResult, DistributedStatus, JobRow

BACKENDS = ("auto", "nccl", "gloo")
IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
CPU_DEFAULT_RANKS = 2


def split_names(value: str | Sequence[str] | None, flag: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else list(value)
    bad = [n for n in names if not IDENTIFIER.match(n)]
    if bad or not names:
        raise MLOpsUsageError(f"{flag} takes comma-separated Python names, got {value!r}")
    return tuple(names)


def parse_gpus(gpus: str | Sequence[int] | None) -> tuple[int, ...] | None:
    if gpus is None:
        return None
    try:
        parsed = tuple(int(g) for g in (gpus.split(",") if isinstance(gpus, str) else gpus))
    except ValueError:
        raise MLOpsUsageError(f"--gpus takes GPU indices such as 0,1, got {gpus!r}") from None
    if not parsed or len(set(parsed)) != len(parsed) or min(parsed) < 0:
        raise MLOpsUsageError(f"--gpus takes distinct GPU indices such as 0,1, got {gpus!r}")
    return parsed


def check_rdzv(rdzv: str) -> str:
    host, _, port = rdzv.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MLOpsUsageError(f"--rdzv takes HOST:PORT, e.g. 10.0.0.1:29400, got {rdzv!r}")
    return rdzv


def visible_gpus(requested: tuple[int, ...] | None) -> int:
    """Count GPUs with nvidia-smi: never initialise CUDA in the kernel."""
    from ..environment import gpu_inventory

    present = {g.index for g in gpu_inventory()}
    if requested is None:
        return len(present)
    missing = [g for g in requested if g not in present]
    if missing:
        shown = ",".join(map(str, sorted(present))) or "none"
        raise MLOpsUsageError(
            f"--gpus {','.join(map(str, requested))}: no GPU {missing[0]} here (visible: {shown})"
        )
    return len(requested)


def plan(
    *,
    n: int | None = None,
    gpus: str | Sequence[int] | None = None,
    backend: str = "auto",
    nnodes: int = 1,
    rdzv: str | None = None,
    executor: str | None = None,
    timeout: float | None = None,
    pull: str | Sequence[str] | None = None,
) -> JobSpec:
    """Check the flags and decide ranks and backend; every mistake is a one-line usage error."""
    if backend not in BACKENDS:
        raise MLOpsUsageError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if n is not None and n < 1:
        raise MLOpsUsageError(f"-n must be at least 1, got {n}")
    if nnodes < 1:
        raise MLOpsUsageError(f"--nnodes must be at least 1, got {nnodes}")
    if timeout is not None and timeout <= 0:
        raise MLOpsUsageError(f"--timeout takes seconds > 0, got {timeout}")
    executor = executor or ("multinode" if nnodes > 1 else "local")
    if executor == "pool":
        raise MLOpsUsageError(
            "--executor pool: once %distributed pool start ran, cells use the pool by themselves"
        )
    if executor not in EXECUTORS:
        raise MLOpsUsageError(f"--executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
    if executor == "multinode" and (nnodes < 2 or rdzv is None):
        raise MLOpsUsageError("multi-node runs need both --nnodes N (N >= 2) and --rdzv HOST:PORT")
    if executor == "local" and (nnodes > 1 or rdzv is not None):
        raise MLOpsUsageError("--nnodes/--rdzv need the multinode or slurm executor")
    if rdzv is not None:
        check_rdzv(rdzv)
    parsed_gpus = parse_gpus(gpus)
    pulled = split_names(pull, "--pull")
    if executor == "slurm":  # the compute nodes, not this one, decide "auto"
        nproc = n or (len(parsed_gpus) if parsed_gpus else CPU_DEFAULT_RANKS)
        chosen = backend
    else:
        gpu_count = visible_gpus(parsed_gpus)
        nproc = n or gpu_count or CPU_DEFAULT_RANKS
        if backend == "nccl" and nproc > gpu_count:
            raise MLOpsUsageError(
                f"NCCL needs one GPU per rank: {nproc} ranks per node asked for, {gpu_count} "
                "GPU(s) visible; use -n with at most that many ranks, or --backend gloo"
            )
        chosen = backend if backend != "auto" else ("nccl" if 0 < nproc <= gpu_count else "gloo")
    return JobSpec(
        nproc_per_node=nproc,
        backend=chosen,
        nnodes=nnodes,
        rdzv=rdzv,
        executor=executor,
        gpus=parsed_gpus,
        pull=pulled or ("result",),
        pull_explicit=pulled is not None,
        timeout=timeout,
    )


def resolve_push(
    push: Mapping[str, Any] | str | Iterable[str] | None, namespace: Mapping[str, Any]
) -> dict[str, Any]:
    """``push`` as values, or as names looked up in the notebook's namespace."""
    if push is None:
        return {}
    if isinstance(push, Mapping):
        return dict(push)
    names = split_names(push if isinstance(push, str) else list(push), "--push") or ()
    missing = [n for n in names if n not in namespace]
    if missing:
        raise MLOpsUsageError(f"--push {missing[0]}: no variable named {missing[0]!r} here")
    return {n: namespace[n] for n in names}


def check_syntax(source: str) -> None:
    """Compile the cell here first: a typo should not cost the seconds that starting ranks take."""
    from .worker import compile_cell

    try:
        compile_cell(source)
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else ""
        text = f": {exc.text.strip()}" if exc.text and exc.text.strip() else ""
        raise MLOpsUsageError(
            f"the cell does not compile, {where}{type(exc).__name__}: {exc.msg}{text}"
        ) from None
    except ValueError as exc:  # e.g. a null byte in the source
        raise MLOpsUsageError(f"the cell does not compile: {exc}") from None


def print_line(text: str) -> None:
    print(text, flush=True)


def run(
    source: str,
    *,
    n: int | None = None,
    push: Mapping[str, Any] | str | Iterable[str] | None = None,
    pull: str | Sequence[str] | None = None,
    gpus: str | Sequence[int] | None = None,
    backend: str = "auto",
    nnodes: int = 1,
    rdzv: str | None = None,
    executor: str | None = None,
    timeout: float | None = None,
    all_logs: bool = False,
    fresh: bool = False,
    sink: Callable[[str], None] = print_line,
    on_status: Callable[[str], None] | None = None,
    settings: Settings | None = None,
) -> DistributedResult:
    """Run ``source`` on every rank under torchrun and return rank 0's pulled names.

    ``push`` is a mapping of values, or names (a list, or "a,b") taken from the notebook.
    ``sink`` receives the live log lines, ``on_status`` a one-line summary of every rank's
    state each time it changes (the magic shows it in a display that updates in place).
    While a warm pool runs (``pool.start``), a single-node cell runs there unless ``fresh``.
    """
    from ..environment import TORCH_INSTALL, torch_installed
    from ..tracking.active import active_run
    from . import pool as warm

    if not torch_installed():
        raise MLOpsUsageError(f"%%distributed needs torch, which is not installed: {TORCH_INSTALL}")
    check_syntax(source)
    running_pool = None if fresh or executor or nnodes > 1 or rdzv else warm.running()
    if running_pool is not None:
        check_fits_pool(running_pool.spec, n, gpus, backend)
        tracked = active_run()
        return warm.run_in_pool(
            running_pool,
            source,
            resolve_push(push, user_namespace()),
            pull=split_names(pull, "--pull") or ("result",),
            pull_explicit=pull is not None,
            tracking=(tracked.run_id, tracked.tracking_uri) if tracked else (None, None),
            timeout=timeout,
            all_logs=all_logs,
            sink=sink,
        )

    spec = plan(
        n=n,
        gpus=gpus,
        backend=backend,
        nnodes=nnodes,
        rdzv=rdzv,
        executor=executor,
        timeout=timeout,
        pull=pull,
    )
    values = resolve_push(push, user_namespace())
    tracked = active_run()
    if tracked is not None:
        spec = replace(spec, mlflow_run_id=tracked.run_id, mlflow_tracking_uri=tracked.tracking_uri)
    settings = settings or current_settings()
    job = create_job(settings.home, source, spec, values)
    engine = get_executor(spec.executor)
    started = time.monotonic()
    launched = engine.launch(job)
    if isinstance(launched, str):
        job.set_state("submitted", slurm_job_id=launched)
        sink(f"[jupyter-mlops] submitted {spec.executor} job {launched}; logs: {job.logs_dir}")
        return result_of(job, "submitted", {}, 0.0, scheduler_id=launched)
    pump = LogPump(job.logs_dir, sink, ranks=None if all_logs else (0,))
    try:
        job.set_state("running", agent_pid=launched.pid, host=os.uname().nodename)
        if spec.nnodes > 1:
            sink(
                f"[jupyter-mlops] waiting for {spec.nnodes - 1} more node(s); on each, run:\n"
                f"{join_command(job)}"
            )
        code = watch(launched, job, pump, spec.timeout, RankStatus(job, on_status))
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
        if tracked is not None:
            log_to_run(job, tracked.run_id, tracked.tracking_uri)
    if code != 0:
        job.set_state("failed", exit_code=code)
        raise failure_error(job, code, list(pump.agent_tail))
    values = loads((job.dir / RESULT_FILE).read_bytes())
    job.set_state("ok", exit_code=0)
    return result_of(job, "ok", values, time.monotonic() - started)


def check_fits_pool(
    spec: JobSpec, n: int | None, gpus: str | Sequence[int] | None, backend: str
) -> None:
    asked = []
    if n is not None and n != spec.world_size:
        asked.append(f"-n {n}")
    if gpus is not None and parse_gpus(gpus) != spec.gpus:
        asked.append("--gpus")
    if backend not in ("auto", spec.backend):
        asked.append(f"--backend {backend}")
    if asked:
        raise MLOpsUsageError(
            f"{' '.join(asked)} does not match the running pool ({spec.world_size} "
            f"{spec.backend} ranks); add --fresh for a one-shot job, or %distributed pool stop"
        )


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
    """Tells ``on_status`` each rank's state when it changes, at most every half second."""

    def __init__(self, job: Job, on_status: Callable[[str], None] | None) -> None:
        self.job = job
        self.on_status = on_status
        self.shown = ""
        self.checked = 0.0

    def poll(self, *, final: bool = False) -> None:
        if self.on_status is None or (not final and time.monotonic() - self.checked < 0.5):
            return
        self.checked = time.monotonic()
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

    Any other way out (Ctrl-C, an error) leaves the stopping to :func:`run`.
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


def failure_error(job: Job, code: int, agent_tail: list[str]) -> DistributedCellError:
    """The rank that caused the failure (see :func:`rank_error`), else the agent's own end."""
    exits = [RankExit(rank, exitcode) for rank, exitcode in job.rank_exits().items()]
    error = rank_error(job, "job", rank_failures(job), exits)
    if error is not None:
        return error
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return DistributedCellError(
        f"the torchrun agent {how} before any rank reported an error (job {job.id}); "
        f"its last lines (full log: {job.logs_dir / 'agent.log'}):",
        job_id=job.id,
        traceback="\n".join(agent_tail[-15:]),
    )


def log_to_run(job: Job, run_id: str, tracking_uri: str) -> None:
    """Job parameters and per-rank logs on the active ``%%track`` run."""
    from ..tracking.client import mlflow_client

    try:
        client = mlflow_client(tracking_uri)
        existing = client.get_run(run_id).data.params
        params = {
            "distributed.world_size": str(job.spec.world_size),
            "distributed.nnodes": str(job.spec.nnodes),
            "distributed.backend": job.spec.backend,
            "distributed.executor": job.spec.executor,
        }
        for key, value in params.items():
            if key not in existing:  # a second job in the same run keeps the first job's params
                client.log_param(run_id, key, value)
        artifact_path = f"distributed/{job.id}"
        client.log_artifacts(run_id, str(job.logs_dir), artifact_path)
        if any(job.errors_dir.iterdir()):
            client.log_artifacts(run_id, str(job.errors_dir), f"{artifact_path}/errors")
        client.log_artifact(run_id, str(job.dir / "cell.py"), artifact_path)
    except Exception as exc:
        warnings.warn(f"could not log job {job.id} to MLflow run {run_id}: {exc}", stacklevel=2)


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
        if (job.dir / RESULT_FILE).exists():
            name = "ok"
        elif any(job.errors_dir.glob("rank-*.json")):
            name = "failed"
    return JobRow(job.id, name, job.spec.world_size, job.spec.backend, job.spec.executor, live)


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
        if row.live_processes or row.state == "submitted":
            get_executor(job.spec.executor).cancel(job)
            job.set_state("cancelled")
            cancelled.append(job.id)
    result = status(settings=settings)
    result.cancelled = cancelled
    return result
