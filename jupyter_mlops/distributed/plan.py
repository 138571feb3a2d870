"""From a cell's flags to a launch plan: ranks, backend and executor, every mistake a usage error.

A face builds a :class:`JobRequest` from what the user typed; :func:`plan` checks it and turns
it into the :class:`~.job.JobSpec` that is written to the job folder. Nothing starts here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import MLOpsUsageError
from .executors import EXECUTORS
from .job import JobSpec

BACKENDS = ("auto", "nccl", "gloo")
IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
CPU_DEFAULT_RANKS = 2


@dataclass(frozen=True)
class JobRequest:
    """The flags of one ``%%distributed`` cell (or ``mlops.distributed.run`` call), unchecked.

    ``push`` is a mapping of values, or names (a list, or "a,b") taken from the notebook;
    ``pull`` the names (a list, or "x,y") rank 0 sends back, ``result`` when not given.
    """

    n: int | None = None
    gpus: str | Sequence[int] | None = None
    backend: str = "auto"
    nnodes: int = 1
    rdzv: str | None = None
    executor: str | None = None
    timeout: float | None = None
    push: Mapping[str, Any] | str | Iterable[str] | None = None
    pull: str | Sequence[str] | None = None
    all_logs: bool = False
    fresh: bool = False
    max_restarts: int = 0
    # Options of one executor (see Executor.options): Slurm's, Ray's, Kubernetes'.
    partition: str | None = None
    account: str | None = None
    time: str | None = None
    sbatch: Sequence[str] = ()
    address: str | None = None
    gpus_per_rank: int | None = None
    export: str | bool | None = None
    image: str | None = None

    @property
    def may_use_pool(self) -> bool:
        """A warm pool runs single-node cells that ask for no executor or restarts of their own."""
        return not (
            self.fresh or self.executor or self.nnodes > 1 or self.rdzv or self.max_restarts
        )

    @property
    def pulled(self) -> tuple[str, ...]:
        return split_names(self.pull, "--pull") or ("result",)


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


def plan(request: JobRequest) -> JobSpec:
    """Check the flags and decide ranks and backend; every mistake is a one-line usage error."""
    n, backend, nnodes, rdzv, timeout = (
        request.n,
        request.backend,
        request.nnodes,
        request.rdzv,
        request.timeout,
    )
    if backend not in BACKENDS:
        raise MLOpsUsageError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if n is not None and n < 1:
        raise MLOpsUsageError(f"-n must be at least 1, got {n}")
    if nnodes < 1:
        raise MLOpsUsageError(f"--nnodes must be at least 1, got {nnodes}")
    if timeout is not None and timeout <= 0:
        raise MLOpsUsageError(f"--timeout takes seconds > 0, got {timeout}")
    if not isinstance(request.max_restarts, int) or request.max_restarts < 0:
        raise MLOpsUsageError(
            f"--max-restarts takes a whole number >= 0, got {request.max_restarts!r}"
        )
    executor = request.executor or ("multinode" if nnodes > 1 else "local")
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
    parsed_gpus = parse_gpus(request.gpus)
    pulled = split_names(request.pull, "--pull")
    options = executor_options(request, executor)
    if EXECUTORS[executor].remote:  # the cluster's nodes, not this one, decide "auto"
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
        max_restarts=request.max_restarts,
        options=options,
    )


OPTION_FLAGS = (
    "partition",
    "account",
    "time",
    "sbatch",
    "address",
    "gpus_per_rank",
    "export",
    "image",
)


def executor_options(request: JobRequest, executor: str) -> dict[str, Any]:
    """The executor-specific flags that were given, checked by the executor that takes them."""
    given = {
        name: getattr(request, name)
        for name in OPTION_FLAGS
        if getattr(request, name) not in (None, False, ())
    }
    for name in given:
        if name not in EXECUTORS[executor].options:
            owners = [e for e, cls in EXECUTORS.items() if name in cls.options]
            flag = "--" + name.replace("_", "-")
            raise MLOpsUsageError(
                f"{flag} is an option of --executor {' or '.join(owners)}, not {executor}"
            )
    return EXECUTORS[executor].check_options(given)


def check_fits_pool(spec: JobSpec, request: JobRequest) -> None:
    """A cell sent to the running pool must not ask for another shape than the pool's."""
    asked = []
    if request.n is not None and request.n != spec.world_size:
        asked.append(f"-n {request.n}")
    if request.gpus is not None and parse_gpus(request.gpus) != spec.gpus:
        asked.append("--gpus")
    if request.backend not in ("auto", spec.backend):
        asked.append(f"--backend {request.backend}")
    if asked:
        raise MLOpsUsageError(
            f"{' '.join(asked)} does not match the running pool ({spec.world_size} "
            f"{spec.backend} ranks); add --fresh for a one-shot job, or %distributed pool stop"
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
