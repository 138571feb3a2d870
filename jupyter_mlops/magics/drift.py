"""``%drift``: data drift between two DataFrames or snapshots, with Evidently's verdicts."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from ..context import current_settings
from ..errors import GateFailed, MLOpsUsageError
from ..registry.errors import GateWarning
from .core import parse, usage_errors

T = TypeVar("T")


def per_column(
    text: str | None, convert: Callable[[str], T], flag: str
) -> tuple[T | None, dict[str, T]]:
    """``"psi"`` / ``"psi,age=ks,city=chisquare"`` -> (for every column, per column)."""
    if text is None:
        return None, {}
    overall: T | None = None
    columns: dict[str, T] = {}
    for item in (part.strip() for part in text.split(",")):
        name, equals, value = item.rpartition("=")
        try:
            converted = convert(value.strip())
        except ValueError:
            raise MLOpsUsageError(f"{flag}: cannot read {value.strip()!r} in {item!r}") from None
        if not item or (equals and not name.strip()):
            raise MLOpsUsageError(
                f"{flag}: empty item in {text!r}; write VALUE or COLUMN=VALUE, comma-separated"
            )
        if equals:
            columns[name.strip()] = converted
        else:
            overall = converted
    return overall, columns


@contextmanager
def gate_warning_from_magic(magic: str = "drift") -> Iterator[None]:
    """In ``gate_mode=warn`` a held --fail-on warns; name the magic (``%drift``) as its origin,
    on one line, instead of our install path and source line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GateWarning)
        yield
    for warning in caught:
        if issubclass(warning.category, GateWarning):
            warnings.warn_explicit(warning.message, warning.category, f"%{magic}", 1)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


@magics_class
class DriftMagics(Magics):
    """Data drift reports."""

    @magic_arguments()
    @argument("reference", help="Reference data: a DataFrame variable or a snapshot REF.")
    @argument("current", help="Current data: a DataFrame variable or a snapshot REF.")
    @argument(
        "--columns", default=None, help="Comma-separated columns to compare (default: all shared)."
    )
    @argument(
        "--engine",
        default="fast",
        help="fast (default) or evidently (needs jupyter-mlops[evidently]).",
    )
    @argument(
        "--method",
        default=None,
        help="Test for every column and/or per column: 'psi' or 'psi,age=ks'. Tests: wasserstein, "
        "jensenshannon, ks, chisquare, z, psi, kl_div, hellinger (default: Evidently's choice).",
    )
    @argument(
        "--threshold",
        default=None,
        help="Threshold for every column and/or per column: '0.2,age=0.05'.",
    )
    @argument(
        "--drift-share",
        type=float,
        default=0.5,
        help="Dataset drift when this share of columns drift.",
    )
    @argument(
        "--sample", type=int, default=None, help="Compare a seeded sample of N rows per side."
    )
    @argument(
        "--fail-on",
        default=None,
        help='Gate: "share_drifted > 0.3", "column:age > 0.2", joined by "," or "or"; '
        "recorded like a promotion (<home>/reports/, MLflow, %%lineage).",
    )
    @argument(
        "--model",
        default=None,
        metavar="NAME@ALIAS",
        help="Record the verdict on this model version (NAME@ALIAS or NAME/VERSION).",
    )
    @argument(
        "--save",
        default=None,
        metavar="PATH",
        help="Write the HTML report to PATH and its JSON beside it.",
    )
    @line_magic
    def drift(self, line: str) -> Any:
        """Data drift: ``%drift REFERENCE CURRENT [--columns a,b] [--engine fast|evidently]
        [--method M] [--threshold T] [--fail-on "share_drifted > 0.3"] [--model NAME@ALIAS]
        [--save PATH]``.

        Tests each column with Evidently 0.7's DataDriftPreset defaults: above 1,000 reference
        values, Wasserstein distance normed by the reference std (numerical) or Jensen-Shannon
        distance (categorical, or at most 5 distinct values), drift at >= 0.1; up to 1,000,
        K-S (p <= 0.05), chi-square or, for two values, a Z-test (p < 0.05). The dataset drifted
        when at least --drift-share of the columns did. Inside ``%%track`` the share, each
        column's statistic and the HTML/JSON report are logged to the run. --fail-on is a gate
        recorded like a promotion's (<home>/reports/, the run or --model version, %lineage); a
        condition that holds shows the report, then raises GateFailed (a warning with
        gate_mode=warn).
        """
        from ..drift import service

        args = parse(self.drift, line, "drift")
        namespace = self.shell.user_ns if self.shell else {}
        with usage_errors("drift"), gate_warning_from_magic():
            method, column_methods = per_column(args.method, str, "--method")
            threshold, column_thresholds = per_column(args.threshold, float, "--threshold")
            options = service.DriftOptions(
                columns=tuple(c.strip() for c in args.columns.split(",") if c.strip())
                if args.columns
                else None,
                engine=args.engine,
                method=method,
                threshold=threshold,
                per_column_method=column_methods,
                per_column_threshold=column_thresholds,
                drift_share=args.drift_share,
                sample=args.sample,
                fail_on=args.fail_on,
                save=args.save,
                labels=(args.reference, args.current),
                model=args.model,
            )
            settings = current_settings()
            result = service.compare(
                settings,
                namespace.get(args.reference, args.reference),
                namespace.get(args.current, args.current),
                options,
            )
            try:
                service.gate(settings, result, options)
            except GateFailed:  # show the report, then fail the cell with the gate's table
                display(result)
                raise
            return result
