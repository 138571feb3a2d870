"""``python -m jupyter_mlops.distributed.worker JOBDIR``: what every rank runs under torchrun.

It ties itself to the agent (PDEATHSIG), records its pid, initialises the process group,
defines ``rank, world_size, local_rank, device, restart`` (torchrun's restart count) and the
pushed values, runs the cell compiled as ``<cell>`` (registered in ``linecache``, so tracebacks
show the cell's lines), and on rank 0 saves the pulled names. A failure is written to
``errors/rank-N.json`` with a timestamp, so the notebook can tell the root cause from the ranks
that failed because of it. The process group is
always destroyed: a rank that exits without it aborts and hides the real error.
"""

from __future__ import annotations

import builtins
import json
import linecache
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import CodeType
from typing import Any, NoReturn

from .errors import clean_message
from .job import (
    CELL_FILE,
    CELL_FILENAME,
    RESULT_FILE,
    Job,
    dumps_cpu,
    load_inputs,
    load_job,
    write_atomic,
)
from .procs import die_with_parent
from .rank_logging import tracked_by_rank

DEFAULT_PG_TIMEOUT = timedelta(minutes=10)
PACKAGE_DIR = os.path.realpath(Path(__file__).parent.parent) + os.sep


class SetupError(RuntimeError):
    """The process group cannot be built as asked (shown to the user as the rank's error)."""


def choose_backend(requested: str, local_world_size: int) -> str:
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "auto":
        return "nccl" if gpus >= local_world_size else "gloo"
    if requested == "nccl" and gpus < local_world_size:
        raise SetupError(
            f"NCCL needs one GPU per rank: this node runs {local_world_size} ranks but sees "
            f"{gpus} GPU(s) (host {socket.gethostname()}); use fewer ranks or --backend gloo"
        )
    return requested


def init_group(job: Job, local_rank: int, local_world_size: int) -> Any:
    import torch
    import torch.distributed as dist

    if dist.is_initialized():  # Ray Train built the group (--executor ray)
        nccl = dist.get_backend() == "nccl"
        return torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    backend = choose_backend(job.spec.backend, local_world_size)
    timeout = timedelta(seconds=job.spec.timeout) if job.spec.timeout else DEFAULT_PG_TIMEOUT
    store = attempt_store(timeout)
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device, timeout=timeout, **store)
    else:
        device = torch.device("cpu")
        dist.init_process_group(backend, timeout=timeout, **store)
    return device


def attempt_store(timeout: timedelta) -> dict[str, Any]:
    """After a torchrun restart, the agent's store seen under a prefix of its own attempt.

    torchrun shares one TCPStore across rendezvous rounds, and a process group's keys carry
    no attempt: a restarted rank could read the address a killed peer published and fail to
    connect ("Gloo connectFullMesh failed ... Connection refused", seen about every other
    restart here). The first attempt keeps torch's own env:// set-up.
    """
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    if not restart or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return {}
    import torch.distributed as dist

    agent = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=timeout
    )
    return {
        "store": dist.PrefixStore(f"jupyter-mlops/attempt-{restart}/", agent),
        "rank": int(os.environ["RANK"]),
        "world_size": int(os.environ["WORLD_SIZE"]),
    }


def bind_rank(job: Job, rank: int) -> int:
    """Tell this rank's helpers where its job folder is, start its stats; the restart count."""
    from .checkpoint import JOB_DIR_ENV
    from .stats import start_recording

    os.environ[JOB_DIR_ENV] = str(job.dir)
    start_recording(job.dir, rank)
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def compile_cell(source: str) -> CodeType:
    """The cell as Python compiles it in the notebook (no ``__future__`` flags of ours)."""
    return compile(source, CELL_FILENAME, "exec", dont_inherit=True)


def run_cell(source: str, namespace: dict[str, Any]) -> None:
    linecache.cache[CELL_FILENAME] = (
        len(source),
        None,
        source.splitlines(keepends=True),
        CELL_FILENAME,
    )
    exec(compile_cell(source), namespace)


def drop_our_frames(report: traceback.TracebackException) -> None:
    """Remove jupyter-mlops' own frames (helpers the cell called), here and in chained errors."""
    report.stack = traceback.StackSummary.from_list(
        [f for f in report.stack if not os.path.realpath(f.filename).startswith(PACKAGE_DIR)]
    )
    for chained in (report.__cause__, report.__context__):
        if chained is not None:
            drop_our_frames(chained)


def cell_traceback(exc: BaseException) -> str:
    """The traceback from the cell's first frame on, without our frames or gloo's noise."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != CELL_FILENAME:
        tb = tb.tb_next
    report = traceback.TracebackException(type(exc), exc, tb or exc.__traceback__)
    drop_our_frames(report)
    text = "".join(report.format())
    message = str(exc)
    return text.replace(message, clean_message(message)) if message else text


def pulled(names: tuple[str, ...], explicit: bool, namespace: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for name in names:
        if name in namespace:
            values[name] = namespace[name]
        elif explicit:
            raise NameError(f"--pull {name}: the cell did not define {name!r} on rank 0")
    return values


def failure_report(rank: int, exc: BaseException) -> dict[str, Any]:
    """The fields of :class:`RankFailure`; the timestamp tells the root cause from its effects."""
    return {
        "rank": rank,
        "timestamp": time.time(),
        "error_type": type(exc).__name__,
        "message": clean_message(str(exc)),
        "traceback": cell_traceback(exc),
    }


def record_failure(job: Job, rank: int, exc: BaseException) -> dict[str, Any]:
    report = failure_report(rank, exc)
    write_atomic(job.errors_dir / f"rank-{rank}.json", json.dumps(report).encode())
    return report


def report_rank(job: Job, rank: int, state: str) -> None:
    """``pids/rank-N.json``: where the rank runs and how far it got (status, cancel, cleanup)."""
    entry = {"rank": rank, "pid": os.getpid(), "host": os.uname().nodename, "state": state}
    write_atomic(job.pids_dir / f"rank-{rank}.json", json.dumps(entry).encode())


def main(job_dir: Path) -> int:
    die_with_parent()
    if os.getppid() == 1:  # the agent died before prctl took effect
        return 1
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ["LOCAL_RANK"])
    job = load_job(job_dir)
    report_rank(job, rank, "running")
    restart = bind_rank(job, rank)

    import torch.distributed as dist

    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    try:
        namespace.update(load_inputs(job))
        device = init_group(job, local_rank, int(os.environ["LOCAL_WORLD_SIZE"]))
        namespace.update(
            rank=rank,
            world_size=int(os.environ["WORLD_SIZE"]),
            local_rank=local_rank,
            device=device,
            restart=restart,
        )
        with tracked_by_rank(rank, job.spec.mlflow_run_id, job.spec.mlflow_tracking_uri):
            run_cell((job.dir / CELL_FILE).read_text(), namespace)
        if rank == 0:
            values = pulled(job.spec.pull, job.spec.pull_explicit, namespace)
            write_atomic(job.dir / RESULT_FILE, dumps_cpu(values))
        # Tear down together: a rank destroying its group while a peer is still in the last
        # collective sometimes aborts the peer (SIGABRT seen with gloo on a loaded machine).
        dist.barrier()
        report_rank(job, rank, "done")
    except KeyboardInterrupt:  # the job was cancelled: the notebook says so in one line
        report_rank(job, rank, "stopped")
        return 130
    except BaseException as exc:
        report = record_failure(job, rank, exc)
        report_rank(job, rank, "failed")
        # One line here (the cell raises the full traceback): a rank that failed only because
        # a peer died would otherwise bury the root cause under its own long traceback.
        print(f"rank {rank} failed: {report['error_type']}: {report['message']}", file=sys.stderr)
        return 1
    finally:
        from .stats import stop_recording

        stop_recording()
        sys.stdout.flush()
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def run_rank(rank_main: Callable[[Path], int], module: str) -> NoReturn:
    """``python -m MODULE JOBDIR``: run one rank, then exit without interpreter teardown.

    Destroying the cell's DDP/gloo objects at exit sometimes aborts a rank whose work is done
    ("terminate called without an active exception", seen under load), so flush and _exit.
    """
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: python -m {module} JOBDIR")
    code = rank_main(Path(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run_rank(main, "jupyter_mlops.distributed.worker")
