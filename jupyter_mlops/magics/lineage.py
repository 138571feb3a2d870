"""``%lineage``, and the cell hooks that record papermill parameters on tracked runs."""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .. import api
from .core import parse, usage_errors


def before_cell(info: Any) -> None:
    """pre_run_cell: notice papermill's parameters cell. Never lets an error through."""
    try:
        from ..lineage import batch

        batch.before_cell(getattr(info, "raw_cell", "") or "")
    except Exception:
        pass


def after_cell_of(shell: Any) -> Any:
    def after_cell(result: Any) -> None:
        """post_run_cell: keep the parameters, or give them to the runs this cell started."""
        try:
            from ..lineage import batch

            batch.after_cell(shell.user_ns)
        except Exception:  # recording must never break the notebook
            pass

    after_cell.mlops_hook = True  # type: ignore[attr-defined]
    return after_cell


@magics_class
class LineageMagics(Magics):
    """Where data, runs and models came from and what they led to."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        if shell is None:
            return
        events = shell.events.callbacks
        if before_cell not in events["pre_run_cell"]:
            shell.events.register("pre_run_cell", before_cell)
        if not any(getattr(cb, "mlops_hook", False) for cb in events["post_run_cell"]):
            shell.events.register("post_run_cell", after_cell_of(shell))
            from ..lineage import batch

            # Papermill puts its cell first when no cell is tagged "parameters", so it may have
            # run before the first %load_ext of this kernel.
            for source in shell.user_ns.get("In", []) or []:
                names = batch.parameter_names(source)
                if names:
                    batch.capture(names, shell.user_ns)

    @magic_arguments()
    @argument("obj", help="A snapshot REF, a run id, NAME/VERSION or NAME@ALIAS.")
    @line_magic
    def lineage(self, line: str) -> Any:
        """The chain snapshot -> run -> model version -> drift reports -> gate decisions.

        From a snapshot: the runs that saved or loaded it, the models registered from them,
        and their drift reports and gate decisions. From a model version (NAME/VERSION or
        NAME@ALIAS) or a run id: the run, its input snapshots, the drift reports that compared
        them and the gate decisions. Shown as a graph and a table; ``.to_json()`` gives the
        nodes and edges. Read from what %snapshot, %%track, %register, %drift and %promote
        recorded; runs made outside them show what MLflow knows. A bare NAME is a snapshot
        when one has that name, else a registered model (its latest version); ``NAME@ALIAS``
        is a model alias when the model has it, else a snapshot REF such as ``train@v2``.
        """
        args = parse(self.lineage, line, "lineage")
        with usage_errors("lineage"):
            return api.lineage(args.obj.strip("'\""))
