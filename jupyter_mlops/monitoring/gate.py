"""``%monitor --fail-on``: conditions over the windows, read by the registry's one grammar.

    window.share_drifted > 0.3, quality.accuracy < 0.85, outcome.revenue < 10

Names: ``window.NAME`` (a column of ``MonitorResult.windows``: requests, share_drifted,
n_drifted, prediction_drift, missing_share, unseen_share, out_of_range_share, type_changes,
broken_columns, error_share, latency_p95_ms, ...), ``quality.NAME`` (accuracy, f1, roc_auc, mae,
rmse, labelled) and ``outcome.NAME`` (a feedback outcome's mean). ``,`` means ``or``. Each
top-level condition is one check; it fails when it holds in any window, and names those windows.
A window without the value (no labels yet, no requests) is not judged; a condition no window can
answer passes and says so, so a gate on accuracy never fires before labels arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import records
from ..drift.gate import conditions, describe
from ..errors import MLOpsUsageError
from ..registry import checks
from ..registry.results import Check
from .windows import CLASSIFICATION, REGRESSION

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("window", "quality", "outcome")
QUALITY_NAMES = (*CLASSIFICATION, *REGRESSION, "labelled")
FAIL_ON = checks.Names(
    flag="--fail-on",
    usage=(
        'write conditions such as "window.share_drifted > 0.3" or "quality.accuracy < 0.85", '
        'joined by "," or "or" (names: window.NAME, quality.NAME, outcome.NAME; operators: '
        "== != < <= > >=; and, not and parentheses work too)"
    ),
    kinds=KINDS,
    comma_is_or=True,
)


def parse_fail_on(text: str) -> checks.Node:
    return checks.parse(text, FAIL_ON)


def column_of(field: checks.Field) -> str:
    return f"{field.kind}.{field.name}" if field.kind == "outcome" else field.name


@dataclass(frozen=True)
class WindowValues:
    """One window's row as the values a condition reads."""

    row: dict[str, Any]

    def get(self, field: checks.Field) -> float:
        import math

        value = self.row.get(column_of(field))
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise checks.MissingField(field, [], f"no {field} in this window")
        return float(value)


def check_names(node: checks.Node, windows: pd.DataFrame) -> None:
    """A name no window could ever have is a typo: say which names exist."""
    known = set(windows.columns)
    for field in checks.fields(node):
        column = column_of(field)
        if column in known or (field.kind == "quality" and field.name in QUALITY_NAMES):
            continue
        choices = [c for c in windows.columns if c != "window"]
        raise MLOpsUsageError(
            f"--fail-on names {field}, which the monitor does not compute; window names: "
            f"{', '.join(c for c in choices if not c.startswith('outcome.'))}; outcomes: "
            f"{', '.join(c for c in choices if c.startswith('outcome.')) or 'none yet'}"
        )


def condition_check(node: checks.Node, windows: pd.DataFrame) -> tuple[Check, list[Any]]:
    """The check for one condition, and the windows where it holds."""
    name = describe(node)
    threshold = "false"
    if isinstance(node, checks.Compare) and isinstance(node.right, checks.Literal):
        threshold = f"{checks.NEGATED[node.op]} {node.right}"
    held: list[Any] = []
    values: list[float] = []
    judged = 0
    for row in windows.to_dict("records"):
        read = WindowValues(row)
        try:
            found = [read.get(f) for f in checks.fields(node)]
            holds = checks.evaluate(node, read)
        except checks.MissingField:
            continue
        judged += 1
        if holds:
            held.append(row["window"])
            values.append(found[0] if found else float("nan"))
    if not judged:
        detail = "no window has these values yet (not judged)"
        return Check(name, None, threshold, True, detail, kind=records.CHECK_KIND_MONITOR), held
    if not held:
        detail = f"holds in none of {judged} windows"
        return Check(name, None, threshold, True, detail, kind=records.CHECK_KIND_MONITOR), held
    worst = values[0]  # the value furthest past the threshold, for a single comparison
    if isinstance(node, checks.Compare) and node.op in (">", ">="):
        worst = max(values)
    elif isinstance(node, checks.Compare) and node.op in ("<", "<="):
        worst = min(values)
    detail = (
        f"holds in {len(held)} of {judged} windows: "
        + ", ".join(f"{w:%Y-%m-%d %H:%M}" for w in held[:6])
        + (", ..." if len(held) > 6 else "")
    )
    check = Check(name, worst, threshold, False, detail, kind=records.CHECK_KIND_MONITOR)
    return check, held


def fail_on_checks(windows: pd.DataFrame, fail_on: str) -> tuple[list[Check], list[Any]]:
    """Every top-level condition as a check, and the windows where any of them holds."""
    node = parse_fail_on(fail_on)
    check_names(node, windows)
    rows: list[Check] = []
    held: list[Any] = []
    for condition in conditions(node):
        check, where = condition_check(condition, windows)
        rows.append(check)
        held.extend(w for w in where if w not in held)
    return rows, sorted(held)
