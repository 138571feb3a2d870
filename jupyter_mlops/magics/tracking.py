"""``%%track``, ``%runs`` and ``%compare``: experiment tracking on the configured MLflow store."""

from __future__ import annotations

import ast
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .. import api
from ..errors import MLOpsUsageError
from .core import parse, usage_errors

POLICIES = ("auto", "new", "replace", "resume")


def remember_cell(info: Any) -> None:
    """pre_run_cell hook: which cell runs now, for run identity. Never lets an error through."""
    try:
        from ..tracking.run import note_cell

        note_cell(
            getattr(info, "cell_id", None),
            getattr(info, "raw_cell", "") or "",
            getattr(info, "transformed_cell", "") or "",
        )
    except Exception:  # a hook that raises would break every later cell
        pass


def parse_tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise MLOpsUsageError(f"--tag {pair!r} is not KEY=VALUE; write e.g. --tag stage=dev")
        tags[key] = value
    return tags


@magics_class
class TrackingMagics(Magics):
    """Run cells inside MLflow runs, list runs and compare them."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        if shell is not None:
            callbacks = shell.events.callbacks["pre_run_cell"]
            if remember_cell not in callbacks:
                shell.events.register("pre_run_cell", remember_cell)

    def _compile(self, cell: str) -> tuple[str, Any, Any]:
        """The cell as Python (magics transformed) and as code objects: its statements, and its
        final expression (or None). A syntax error is one line naming the line of the cell.
        """
        shell: Any = self.shell
        code = shell.transform_cell(cell)
        try:
            tree = ast.parse(code)
            filename = shell.compile.cache(code, shell.execution_count, raw_code=cell)
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = compile(ast.Expression(tree.body.pop().value), filename, "eval")
            return code, compile(tree, filename, "exec"), last
        except SyntaxError as exc:
            # The %%track line is line 1 of the cell as the user sees it.
            where = f"line {exc.lineno + 1}: " if exc.lineno else ""
            raise UsageError(
                f"%%track: {type(exc).__name__} at {where}{exc.msg}; fix the cell and run it "
                "again (no run was started)"
            ) from None

    @magic_arguments()
    @argument("name", nargs="?", default=None, help="Run name (default: MLflow picks one).")
    @argument("--experiment", help="MLflow experiment (default: the notebook's stem).")
    @argument(
        "--params",
        nargs="+",
        default=[],
        metavar="NAME",
        help="Variables to record as params (names the cell assigns are read when it ends).",
    )
    @argument(
        "--policy",
        default="auto",
        choices=POLICIES,
        help="On re-running the cell: replace the previous run (interactive default), "
        "make a new one (batch default), or resume it.",
    )
    @argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="A tag (repeatable).")
    @cell_magic
    def track(self, line: str, cell: str) -> Any:
        """Run the cell inside an MLflow run: ``%%track [NAME] [--params a b] [--policy P]``.

        Recorded automatically: the named variables as params, the cell source, the notebook
        and cell id, the git commit, Python and package versions, GPUs, and every
        ``mlops.log(...)`` value. The run ends FINISHED, FAILED on an exception or KILLED on an
        interrupt. Inside the cell use ``mlops.log(step=None, **metrics)``,
        ``mlops.log_params(...)`` and ``mlops.log_artifact(path)``; MLflow's own API
        (``mlflow.active_run()``, ``mlflow.log_metric``, autologging) works on this run too.
        """
        args = parse(self.track, line, "track")
        code, body, last = self._compile(cell)  # a syntax error opens no run
        namespace = self.shell.user_ns if self.shell is not None else {}
        run = None
        try:  # not `with run:` after the call: a Ctrl-C in between would leave the run open
            with usage_errors("track"):
                run = api.track(
                    args.name,
                    experiment=args.experiment,
                    param_names=args.params,
                    tags=parse_tags(args.tag),
                    policy=args.policy,
                    source=cell,
                    code=code,
                )
            __tracebackhide__ = True
            exec(body, namespace)
            value = eval(last, namespace) if last is not None else None
        except BaseException as exc:
            if run is not None:
                run.__exit__(type(exc), exc, exc.__traceback__)
            raise
        run.__exit__(None, None, None)
        return value

    @magic_arguments()
    @argument("--experiment", help="Experiment to list (default: the notebook's stem).")
    @argument("--filter", help="MLflow filter, e.g. \"metrics.acc > 0.9 and params.lr = '0.1'\".")
    @argument("--sort", help='Sort key, e.g. "metrics.acc DESC" (default: newest first).')
    @argument("--limit", type=int, default=100, help="At most this many runs (default 100).")
    @argument("--all", action="store_true", help="Include runs superseded by a re-run.")
    @line_magic
    def runs(self, line: str) -> Any:
        """List runs as a DataFrame: run_id, name, status, params.*, metrics.*."""
        args = parse(self.runs, line, "runs")
        with usage_errors("runs"):
            return api.runs(
                experiment=args.experiment,
                filter=args.filter,
                sort=args.sort,
                limit=args.limit,
                include_superseded=args.all,
            )

    @magic_arguments()
    @argument("run_ids", nargs="+", metavar="RUN_ID", help="Two or more run ids (or prefixes).")
    @argument("--metric", action="append", default=None, help="Only these metrics (repeatable).")
    @line_magic
    def compare(self, line: str) -> Any:
        """Params and metrics of runs side by side (differences highlighted), with curves."""
        args = parse(self.compare, line, "compare")
        with usage_errors("compare"):
            metrics = [m for m in args.metric or [] if m]
            return api.compare(*args.run_ids, metric=metrics or None)
