"""``--fail-on``: drift conditions that fail like a promotion gate, parsed by a small grammar.

    conditions := condition (("," | "or") condition)*
    condition  := target op number
    target     := share_drifted | n_drifted | drifted | broken_columns
                | column:NAME | column:"NAME WITH SPACES"
    op         := > | >= | < | <= | == | !=

The gate fails when ANY condition holds. ``column:NAME`` is that column's statistic (a distance, or
a p-value for K-S, chi-square and Z); ``drifted`` is 1 when the dataset drifted, else 0;
``broken_columns`` counts the columns whose data is broken (all values missing on a side, or a
changed type). Nothing is ever evaluated as Python.
"""

from __future__ import annotations

import operator
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import GateFailed, MLOpsUsageError
from .result import DriftResult

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
#: Dataset-level targets and the DriftResult attribute each reads.
DATASET_TARGETS = {
    "share_drifted": "share_drifted",
    "n_drifted": "n_drifted",
    "drifted": "drifted",
    "broken_columns": "n_broken",
}

_CONDITION = re.compile(
    r"""\s*(?:
        (?P<dataset>share_drifted|n_drifted|drifted|broken_columns)
        | column:(?:"(?P<dq>[^"]+)"|'(?P<sq>[^']+)'|(?P<bare>[^\s<>=!,"']+))
    )\s*(?P<op>>=|<=|==|!=|>|<)\s*
    (?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*""",
    re.VERBOSE,
)
_SEPARATOR = re.compile(r"\s*(?:,|\bor\b)\s*")


class DriftGateFailed(GateFailed):
    """A ``--fail-on`` condition held; ``.result`` is the report, ``.failures`` the conditions."""

    def __init__(self, message: str, result: DriftResult, failures: list[str]) -> None:
        super().__init__(message)
        self.result = result
        self.failures = failures

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the report above already says the rest."""
        return [f"GateFailed: {self}"]


class DriftGateWarning(UserWarning):
    """A ``--fail-on`` condition held while ``gate_mode`` is ``warn``."""


@dataclass(frozen=True)
class Condition:
    target: str  # share_drifted, n_drifted, drifted, or the column name
    is_column: bool
    op: str
    value: float

    def __str__(self) -> str:
        target = f"column:{self.target}" if self.is_column else self.target
        return f"{target} {self.op} {self.value:g}"


def parse_fail_on(text: str) -> list[Condition]:
    """Parse ``--fail-on``; a malformed expression is a usage error naming the grammar."""
    conditions: list[Condition] = []
    position = 0
    while True:
        match = _CONDITION.match(text, position)
        if match is None:
            raise MLOpsUsageError(
                f"cannot read --fail-on {text!r} at {text[position:].strip()[:20]!r}; "
                'write conditions like "share_drifted > 0.3" or "column:age > 0.2", '
                'joined by "," or "or" '
                f"(targets: {', '.join(DATASET_TARGETS)}, column:NAME; operators: "
                f"{' '.join(OPERATORS)})"
            )
        column = match["dq"] or match["sq"] or match["bare"]
        conditions.append(
            Condition(
                target=column or match["dataset"],
                is_column=column is not None,
                op=match["op"],
                value=float(match["number"]),
            )
        )
        position = match.end()
        if position == len(text):
            return conditions
        separator = _SEPARATOR.match(text, position)
        if separator is None or separator.end() == position:
            raise MLOpsUsageError(
                f"cannot read --fail-on {text!r}: expected ',' or 'or' before {text[position:]!r}"
            )
        position = separator.end()


def failed_conditions(result: DriftResult, conditions: list[Condition]) -> list[str]:
    """The conditions that hold for this result, each with the observed value."""
    failures = []
    for condition in conditions:
        if condition.is_column:
            try:
                observed = result.column(condition.target).statistic
            except KeyError:
                broken = dict(result.broken)
                if condition.target in broken:
                    failures.append(
                        f"{condition} (column {condition.target!r} is broken: "
                        f"{broken[condition.target]})"
                    )
                    continue
                tested = ", ".join(r.column for r in result.results)
                raise MLOpsUsageError(
                    f"--fail-on names column {condition.target!r}, which was not tested; "
                    f"tested columns: {tested}"
                ) from None
        else:
            observed = float(getattr(result, DATASET_TARGETS[condition.target]))
        if OPERATORS[condition.op](observed, condition.value):
            failures.append(f"{condition} (observed {observed:.6g})")
    return failures


def apply_gate(result: DriftResult, fail_on: str, gate_mode: str) -> list[str]:
    """Raise :class:`DriftGateFailed` (a warning with ``gate_mode="warn"``) if a condition holds."""
    failures = failed_conditions(result, parse_fail_on(fail_on))
    if failures:
        message = f"drift gate failed: {'; '.join(failures)}"
        if gate_mode == "warn":
            warnings.warn(message, DriftGateWarning, stacklevel=3)
        else:
            raise DriftGateFailed(message, result, failures)
    return failures
