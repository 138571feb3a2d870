"""``%%distributed``: run a cell on N ranks under torchrun; ``%distributed status|cancel``."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from .. import distributed
from .core import parse, usage_errors

ACTIONS = ("status", "cancel", "wait", "pool")
POOL_VERBS = ("start", "stop", "restart", "status")
LINE_USAGE = (
    "%distributed: use %%distributed as a cell magic, or %distributed status | "
    "%distributed cancel [JOB_ID] | %distributed wait [JOB_ID] [--timeout S] | "
    "%distributed pool start|stop|restart|status"
)


class StatusLine:
    """One line of per-rank states that updates in place (in batch runs too: no widget needed)."""

    def __init__(self) -> None:
        self.handle: Any = None

    def update(self, text: str) -> None:
        bundle = {"text/plain": f"[jupyter-mlops] {text}"}
        if self.handle is None:
            self.handle = display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)


@magics_class
class DistributedMagics(Magics):
    """Distributed training from a cell."""

    @magic_arguments()
    @argument("-n", type=int, default=None, help="Ranks per node (default: visible GPUs, else 2).")
    @argument("--gpus", default=None, help="GPU indices, e.g. 0,1; sets CUDA_VISIBLE_DEVICES.")
    @argument(
        "--backend",
        default="auto",
        help="auto (NCCL when every rank has its own GPU, else gloo), nccl or gloo.",
    )
    @argument("--push", default=None, help="Notebook variables to send to every rank: a,b.")
    @argument("--pull", default=None, help="Names to bring back from rank 0 (default: result).")
    @argument("--timeout", type=float, default=None, help="Stop every rank after S seconds.")
    @argument("--nnodes", type=int, default=1, help="Number of nodes (this one is node 0).")
    @argument("--rdzv", default=None, help="HOST:PORT of node 0 for multi-node rendezvous.")
    @argument(
        "--executor", default=None, help="local (default), multinode, slurm, ray or kubernetes."
    )
    @argument("--partition", default=None, help="slurm: the partition (#SBATCH --partition).")
    @argument("--account", default=None, help="slurm: the account (#SBATCH --account).")
    @argument("--time", default=None, help="slurm: the time limit, e.g. 01:00:00.")
    @argument(
        "--sbatch",
        action="append",
        default=[],
        help="slurm: one more #SBATCH option, e.g. --sbatch=--mem=4G (repeatable).",
    )
    @argument("--address", default=None, help="ray: the cluster, auto or ray://HOST:10001.")
    @argument("--gpus-per-rank", type=int, default=None, help="ray/kubernetes: GPUs per rank.")
    @argument(
        "--export",
        nargs="?",
        const=True,
        default=None,
        help="kubernetes: write the PyTorchJob manifest (to PATH if given) and submit nothing.",
    )
    @argument("--image", default=None, help="kubernetes: the container image of every rank.")
    @argument("--all-logs", action="store_true", help="Stream every rank's output, not rank 0's.")
    @argument("--fresh", action="store_true", help="A one-shot job even while a pool runs.")
    @argument(
        "--max-restarts",
        type=int,
        default=0,
        help="Restart every rank up to K times when one fails (torchrun's elastic restarts); "
        "the cell resumes with mlops.distributed.load().",
    )
    @argument(
        "action",
        nargs="*",
        help="Cell: sbatch (same as --executor slurm). Line: status | cancel [JOB_ID] | "
        "pool start|stop|restart|status.",
    )
    @line_cell_magic
    def distributed(self, line: str, cell: str | None = None) -> Any:
        """Run the cell body on N ranks under torchrun, with the process group initialised.

        The cell sees ``rank``, ``world_size``, ``local_rank`` and ``device`` plus the pushed
        variables; ``result`` (or the ``--pull`` names) from rank 0 are set in the notebook.
        Rank 0's output streams into the cell, prefixed ``[rank N]``; every rank's full log is in
        ``<home>/jobs/<id>/logs/``. The cell is compiled first: a syntax error is reported
        before any rank starts. A failing rank raises ``DistributedCellError`` naming the rank
        that caused it (one that died names its exit code or signal) with its traceback; Ctrl-C
        stops every rank and says so in one line.

        ``--max-restarts K`` lets torchrun restart every rank up to K times when one fails; each
        restart is shown with the rank that failed and how (exit code or signal), and a cell
        that starts with ``step = mlops.distributed.load(state)`` resumes from its newest
        ``mlops.distributed.save(state, step)`` checkpoint (``restart`` is the attempt number).

        ``%%distributed sbatch --nnodes N ...`` writes a Slurm batch script that runs the same
        worker with ``srun torchrun`` and submits it (``--executor slurm``).

        As a line magic: ``%distributed status`` lists recent jobs, ``%distributed cancel
        [JOB_ID]`` stops one job or every job that is still running.

        Warm pool: ``%distributed pool start [-n N] [--backend B] [--timeout S]`` keeps N ranks
        alive with their process group; later cells run there in milliseconds and keep their
        variables on every rank (``--fresh`` for a one-shot job). A cell that runs past
        ``--timeout`` is reported as hung; ``pool restart`` recovers, ``pool stop`` ends it.
        """
        args = parse(self.distributed, line, "distributed")
        if cell is None:
            return self.line_action(args)
        if args.action == ["sbatch"]:
            if args.executor not in (None, "slurm"):
                raise UsageError("%%distributed sbatch: submits with --executor slurm only")
            args.executor, args.action = "slurm", []
        if args.action:
            raise UsageError(
                f"%%distributed: unexpected argument {' '.join(args.action)!r}; "
                "see %distributed? for usage"
            )
        request = distributed.JobRequest(
            n=args.n,
            gpus=args.gpus,
            backend=args.backend,
            nnodes=args.nnodes,
            rdzv=args.rdzv,
            executor=args.executor,
            timeout=args.timeout,
            push=args.push,
            pull=args.pull,
            all_logs=args.all_logs,
            fresh=args.fresh,
            max_restarts=args.max_restarts,
            partition=args.partition,
            account=args.account,
            time=args.time,
            sbatch=tuple(args.sbatch),
            address=args.address,
            gpus_per_rank=args.gpus_per_rank,
            export=args.export,
            image=args.image,
        )
        with usage_errors("distributed"):
            result = distributed.run(cell, request, on_status=StatusLine().update)
        if self.shell is not None:
            self.shell.user_ns.update(result.values)
        return result

    def line_action(self, args: Any) -> Any:
        verb, *rest = args.action or [""]
        if verb == "pool" and len(rest) == 1 and rest[0] in POOL_VERBS:
            return self.pool_action(rest[0], args)
        if verb not in ACTIONS or verb == "pool" or (verb == "status" and rest) or len(rest) > 1:
            raise UsageError(LINE_USAGE)
        with usage_errors(f"distributed {verb}"):
            if verb == "status":
                return distributed.status()
            if verb == "wait":
                result = distributed.wait(
                    rest[0] if rest else None, timeout=args.timeout, all_logs=args.all_logs
                )
                if self.shell is not None:
                    self.shell.user_ns.update(result.values)
                return result
            return distributed.cancel(rest[0] if rest else None)

    def pool_action(self, verb: str, args: Any) -> Any:
        pool = distributed.pool
        with usage_errors(f"distributed pool {verb}"):
            if verb == "start":
                return pool.start(
                    args.n, backend=args.backend, gpus=args.gpus, timeout=args.timeout
                )
            if verb == "restart":
                return pool.restart()
            if verb == "stop":
                return pool.stop()
            return pool.status()
