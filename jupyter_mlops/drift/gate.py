"""Gates over drift: ``--fail-on`` conditions, and the drift row of ``%promote`` / ``%gate``.

``--fail-on`` is read by the registry's one condition grammar (:mod:`jupyter_mlops.registry.checks`)
with drift names instead of a run's fields::

    share_drifted > 0.3, column:age > 0.2 or column:"my col" < 0.05
    (n_drifted >= 2 and share_drifted > 0.1) or broken_columns > 0

Names: ``share_drifted``; ``n_drifted`` (also ``drifted_columns``); ``drifted`` (1 when the dataset
drifted, else 0); ``broken_columns`` (columns whose data is broken: all values missing on a side,
or a changed type); ``column:NAME`` (that column's statistic: a distance, or a p-value for K-S,
chi-square and Z). ``,`` means ``or``. The gate fails when ANY top-level condition holds; each
one is a check of a decision recorded like a promotion's (``registry.gates.conclude``). Nothing
is ever evaluated as Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import records
from ..config import Settings
from ..errors import MLOpsUsageError
from ..registry import checks
from ..registry.gates import DataCheck, GateSpec, build_spec
from ..registry.results import Check
from . import inputs
from .engine import compute_drift
from .result import DriftResult

#: The bare names ``--fail-on`` reads and the DriftResult attribute behind each.
DATASET_NAMES = {
    "share_drifted": "share_drifted",
    "n_drifted": "n_drifted",
    "drifted_columns": "n_drifted",
    "drifted": "drifted",
    "broken_columns": "n_broken",
}
FAIL_ON = checks.Names(
    flag="--fail-on",
    usage=(
        'write conditions such as "share_drifted > 0.3" or "column:age > 0.2", joined by "," or '
        f'"or" (names: {", ".join(DATASET_NAMES)}, column:NAME; operators: == != < <= > >=; '
        "and, not and parentheses work too)"
    ),
    kinds=("column",),
    words=tuple(DATASET_NAMES),
    comma_is_or=True,
)


@dataclass(frozen=True)
class DriftValues:
    """A drift result as the values a ``--fail-on`` condition reads."""

    result: DriftResult

    def get(self, field: checks.Field) -> float:
        if not field.kind:
            return float(getattr(self.result, DATASET_NAMES[field.name]))
        try:
            return self.result.column(field.name).statistic
        except KeyError:
            broken = dict(self.result.broken)
            if field.name in broken:
                why = f"column {field.name!r} is broken: {broken[field.name]}"
                raise checks.MissingField(field, [], why) from None
            tested = ", ".join(r.column for r in self.result.results)
            raise MLOpsUsageError(
                f"--fail-on names column {field.name!r}, which was not tested; "
                f"tested columns: {tested}"
            ) from None


def parse_fail_on(text: str) -> checks.Node:
    """Parse ``--fail-on``; a malformed expression is a one-line usage error naming the grammar."""
    return checks.parse(text, FAIL_ON)


def conditions(node: checks.Node) -> list[checks.Node]:
    """The top-level alternatives: each one is a check that fails when it holds."""
    if isinstance(node, checks.BoolOp) and node.op == "or":
        return [item for child in node.items for item in conditions(child)]
    return [node]


def describe(node: checks.Node) -> str:
    """The condition as text, in the grammar's own spelling."""
    if isinstance(node, checks.Compare):
        return f"{node.left} {node.op} {node.right}"
    if isinstance(node, checks.Not):
        return f"not ({describe(node.item)})"
    return "(" + f" {node.op} ".join(describe(item) for item in node.items) + ")"


def condition_check(
    node: checks.Node,
    values: checks.Values,
    labels: tuple[str, str],
    kind: str = records.CHECK_KIND_DRIFT,
) -> Check:
    """One ``--fail-on`` condition as a check that passes while the condition does not hold
    (over a drift result here, over a skew result in :mod:`jupyter_mlops.contracts.skew`)."""
    name = describe(node)
    threshold = "false"
    if isinstance(node, checks.Compare) and isinstance(node.right, checks.Literal):
        threshold = f"{checks.NEGATED[node.op]} {node.right}"
    found = checks.fields(node)
    value: float | str | None = None
    detail = ""
    try:
        read = [(field, values.get(field)) for field in found]
        holds = checks.evaluate(node, values)
    except checks.MissingField as problem:
        holds, detail = True, str(problem)
    else:
        if len(read) == 1:
            value = read[0][1]
        elif read:
            value = ", ".join(
                f"{field}={got:.6g}" if isinstance(got, float) else f"{field}={got}"
                for field, got in read
            )
    return Check(name, value, threshold, not holds, detail, kind=kind, inputs=labels)


def fail_on_checks(result: DriftResult, fail_on: str) -> list[Check]:
    """Every top-level ``--fail-on`` condition evaluated against ``result``."""
    values = DriftValues(result)
    labels = (result.reference.label, result.current.label)
    return [condition_check(node, values, labels) for node in conditions(parse_fail_on(fail_on))]


# --- the drift row of %promote / %gate ----------------------------------------------------------
@dataclass(frozen=True)
class DriftCheck:
    """``--reference``/``--current``: passes when the drifted share is at most
    ``max_drift_share`` (default: the dataset is not drifted by Evidently's rule, share < 0.5)
    and no column's data is broken."""

    reference: Any
    current: Any
    max_drift_share: float | None = None
    labels: tuple[str, str] = ("reference", "current")  # names of DataFrames in the row

    def check(self, settings: Settings) -> Check:
        frames = [
            inputs.resolve(settings, data, role)
            for data, role in zip((self.reference, self.current), self.labels, strict=True)
        ]
        result = compute_drift(
            frames[0][0], frames[1][0], reference_label=frames[0][1], current_label=frames[1][1]
        )
        drifted = [r.column for r in result.results if r.drifted]
        detail = f"{len(drifted)} of {len(result.results)} columns drifted" + (
            f": {', '.join(drifted[:8])}" if drifted else ""
        )
        if self.max_drift_share is None:
            passed = not result.drifted
            threshold = f"< {result.drift_share:g} (dataset drift)"
        else:
            passed = result.share_drifted <= self.max_drift_share
            threshold = f"<= {self.max_drift_share:g}"
        if result.broken:  # all values missing, or a changed type: a failure of the data
            passed, detail = False, f"{result.broken_summary()}; {detail}"
        return Check(
            drift_label(frames[0][1], frames[1][1]),
            float(result.share_drifted),
            threshold,
            passed,
            detail,
            kind=records.CHECK_KIND_DRIFT,
            inputs=(frames[0][1], frames[1][1]),
        )


def drift_label(reference: str, current: str) -> str:
    """The drift row's display name (for people; lineage reads the check's ``inputs``)."""
    return f"drift {reference} -> {current}"


def gate_spec(
    require: str | Sequence[str] = (),
    *,
    vs: str | None = None,
    min_delta: float | None = None,
    metric: str | None = None,
    reference: Any = None,
    current: Any = None,
    max_drift_share: float | None = None,
    labels: tuple[str, str] | None = None,
    data: Sequence[DataCheck] = (),
) -> GateSpec:
    """The checks of ``%promote`` / ``%gate`` from a face's options, validated before anything
    is read or moved: the faces build this once and pass it on. ``data`` are further data
    checks (``--expect``'s contract rows)."""
    if (reference is None) != (current is None):
        raise MLOpsUsageError("--reference and --current go together: give both, or neither")
    if max_drift_share is not None and reference is None:
        raise MLOpsUsageError("--max-drift-share needs --reference and --current")
    if max_drift_share is not None and not 0 <= max_drift_share <= 1:
        raise MLOpsUsageError(f"--max-drift-share {max_drift_share}: give a share between 0 and 1")
    drift: tuple[DataCheck, ...] = ()
    if reference is not None:
        drift = (
            DriftCheck(reference, current, max_drift_share, labels or ("reference", "current")),
        )
    return build_spec(
        [require] if isinstance(require, str) else list(require),
        vs=vs,
        min_delta=min_delta,
        metric=metric,
        data=drift + tuple(data),
    )
