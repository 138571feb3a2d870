"""``%%distributed``: run a cell on N ranks under torchrun; ``%distributed status|cancel``."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from .. import distributed
from .core import parse, usage_errors

ACTIONS = ("status", "cancel")


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
    @argument("--executor", default=None, help="local (default), multinode or slurm.")
    @argument("--all-logs", action="store_true", help="Stream every rank's output, not rank 0's.")
    @argument("action", nargs="*", help="Line magic only: status | cancel [JOB_ID].")
    @line_cell_magic
    def distributed(self, line: str, cell: str | None = None) -> Any:
        """Run the cell body on N ranks under torchrun, with the process group initialised.

        The cell sees ``rank``, ``world_size``, ``local_rank`` and ``device`` plus the pushed
        variables; ``result`` (or the ``--pull`` names) from rank 0 are set in the notebook.
        Rank 0's output streams into the cell, prefixed ``[rank N]``; every rank's full log is in
        ``<home>/jobs/<id>/logs/``. A failing rank raises ``DistributedCellError`` with its
        traceback; an interrupt stops every rank.

        As a line magic: ``%distributed status`` lists recent jobs, ``%distributed cancel
        [JOB_ID]`` stops one job or every job that is still running.
        """
        args = parse(self.distributed, line, "distributed")
        if cell is None:
            return self.line_action(args.action)
        if args.action:
            raise UsageError(
                f"%%distributed: unexpected argument {' '.join(args.action)!r}; "
                "see %distributed? for usage"
            )
        status_line = StatusLine()
        with usage_errors("distributed"):
            result = distributed.run(
                cell,
                n=args.n,
                push=args.push,
                pull=args.pull,
                gpus=args.gpus,
                backend=args.backend,
                nnodes=args.nnodes,
                rdzv=args.rdzv,
                executor=args.executor,
                timeout=args.timeout,
                all_logs=args.all_logs,
                on_status=status_line.update,
            )
        if self.shell is not None:
            self.shell.user_ns.update(result.values)
        return result

    def line_action(self, action: list[str]) -> Any:
        verb, *rest = action or [""]
        if verb not in ACTIONS or (verb == "status" and rest) or len(rest) > 1:
            raise UsageError(
                "%distributed: use %%distributed as a cell magic, or "
                "%distributed status | %distributed cancel [JOB_ID]"
            )
        with usage_errors(f"distributed {verb}"):
            if verb == "status":
                return distributed.status()
            return distributed.cancel(rest[0] if rest else None)
