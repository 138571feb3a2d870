"""``%promote`` and ``%gate``: build the checks, run them all, move the alias only if all pass.

Checks, one row each:

- each ``--require`` expression over the candidate's run (see :mod:`.checks`);
- ``--vs ALIAS``: the candidate's metric against the current holder of ALIAS. The metric is
  ``--metric`` or else the first ``metrics.NAME`` of the first ``--require``; it is "higher is
  better" unless that first ``--require`` compares it with ``<`` or ``<=`` (a loss). The
  candidate passes when it improves on the holder by at least ``--min-delta`` (default 0: at
  least as good);
- data checks such as the drift check between ``--reference`` and ``--current``: objects with a
  ``check(settings)`` method that the face puts in the :class:`GateSpec` (drift builds its own,
  :class:`jupyter_mlops.drift.gate.DriftCheck`, so the registry never imports drift).

Racing promotions: the alias holder is read when the promotion starts; the alias moves under
an exclusive lock only if the holder is still the same (compare-and-set), so of two promotions
that saw the same holder exactly one wins and the other fails with a check saying why.
Every decision (pass or fail, dry runs included) is recorded; see :mod:`.decisions`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from .. import records
from ..config import Settings
from ..errors import MLOpsUsageError
from ..tracking.client import mlflow_client
from . import checks
from .decisions import record_in_mlflow, write_reports
from .errors import GateRejected, GateWarning
from .locks import alias_lock
from .models import alias_holder, get_run, latest_run, resolve_version, split_ref, user
from .results import Check, GateResult

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

RESERVED_ALIASES = ("latest",)
TOLERANCE = 1e-9
MOVED_MEANWHILE = (
    "another promotion moved the alias meanwhile; re-run the gate against the new holder"
)


class DataCheck(Protocol):
    """A check of data rather than of the run (the drift row): one row of the gate."""

    def check(self, settings: Settings) -> Check: ...


@dataclass(frozen=True)
class GateSpec:
    """Every check a gate runs, validated before anything is read or moved.

    The faces build it (``jupyter_mlops.drift.gate.gate_spec`` adds the drift row) and pass it.
    """

    requires: tuple[tuple[str, checks.Node], ...] = ()
    vs: str | None = None  # an alias (promote) or NAME@ALIAS (gate)
    metric: str | None = None
    lower_is_better: bool = False
    min_delta: float = 0.0
    data: tuple[DataCheck, ...] = ()


def build_spec(
    require: Sequence[str] = (),
    vs: str | None = None,
    min_delta: float | None = None,
    metric: str | None = None,
    data: Sequence[DataCheck] = (),
) -> GateSpec:
    if isinstance(require, str):
        require = [require]
    parsed = tuple((text.strip(), checks.parse(text)) for text in require)
    if min_delta is not None and vs is None:
        raise MLOpsUsageError("--min-delta needs --vs ALIAS (the holder the candidate must beat)")
    if metric is not None and vs is None:
        raise MLOpsUsageError("--metric needs --vs ALIAS (it names the metric to compare)")
    if not parsed and vs is None and not data:
        raise MLOpsUsageError(
            'nothing to check: give --require "EXPR", --vs ALIAS or --reference/--current'
        )
    lower = False
    if vs is not None:
        first = _first_metric_comparison(parsed)
        if metric is None:
            if first is None:
                raise MLOpsUsageError(
                    "--vs needs a metric: pass --metric NAME, or start the first --require with "
                    "a metrics.NAME comparison"
                )
            metric, lower = first
        else:
            metric = metric.removeprefix("metrics.")
            lower = first is not None and first[0] == metric and first[1]
    return GateSpec(
        requires=parsed,
        vs=vs,
        metric=metric,
        lower_is_better=lower,
        min_delta=min_delta or 0.0,
        data=tuple(data),
    )


def _first_metric_comparison(parsed: Sequence[tuple[str, checks.Node]]) -> tuple[str, bool] | None:
    """(metric name, lower is better) from the first ``--require``, if it names a metric."""
    if not parsed:
        return None
    node = parsed[0][1]
    metric = next((f for f in checks.fields(node) if f.kind == "metrics"), None)
    if metric is None:
        return None
    lower = False
    if isinstance(node, checks.Compare):
        op = node.op
        if node.right == metric:  # "0.3 >= metrics.loss" reads as "metrics.loss <= 0.3"
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        lower = op in ("<", "<=")
    return metric.name, lower


def run_values(run: Any) -> checks.RunValues:
    return checks.RunValues(dict(run.data.metrics), dict(run.data.params), dict(run.data.tags))


def require_check(text: str, node: checks.Node, values: checks.RunValues) -> Check:
    read: list[str] = []
    value: float | str | None = None
    threshold = "true"
    if (
        isinstance(node, checks.Compare)
        and isinstance(node.left, checks.Field)
        and isinstance(node.right, checks.Literal)
    ):
        threshold = f"{node.op} {node.right}"
    try:
        for field in checks.fields(node):
            got = values.get(field)
            read.append(f"{field}={got:.6g}" if isinstance(got, float) else f"{field}={got!r}")
            if value is None:
                value = got
        passed = checks.evaluate(node, values)
    except (checks.MissingField, checks.Incomparable) as problem:
        return Check(
            text,
            value if read else None,
            threshold,
            False,
            str(problem),
            kind=records.CHECK_KIND_REQUIRE,
        )
    if threshold == "true" and len(read) != 1:
        value = ", ".join(read)
    return Check(text, value, threshold, passed, kind=records.CHECK_KIND_REQUIRE)


def versus_check(client: MlflowClient, spec: GateSpec, candidate_run: Any, holder: Any) -> Check:
    metric = spec.metric or ""
    holder_run = client.get_run(holder.run_id)
    name = f"metrics.{metric} vs {spec.vs} (v{holder.version})"
    mine = candidate_run.data.metrics.get(metric)
    theirs = holder_run.data.metrics.get(metric)
    sign = "<=" if spec.lower_is_better else ">="
    versus = records.CHECK_KIND_VERSUS
    if theirs is None:
        return Check(
            name,
            mine,
            f"{sign} holder's value",
            False,
            f"the holder v{holder.version} has no metrics.{metric}",
            kind=versus,
            metric=metric,
        )
    need = theirs - spec.min_delta if spec.lower_is_better else theirs + spec.min_delta
    threshold = f"{sign} {need:.6g} (v{holder.version}: {theirs:.6g}, min delta {spec.min_delta:g})"
    if mine is None:
        return Check(
            name,
            None,
            threshold,
            False,
            f"the candidate's run has no metrics.{metric}",
            kind=versus,
            metric=metric,
        )
    slack = TOLERANCE * max(1.0, abs(need))  # 0.3 - 0.1 must satisfy "<= 0.2"
    passed = mine <= need + slack if spec.lower_is_better else mine >= need - slack
    return Check(name, float(mine), threshold, passed, kind=versus, metric=metric)


def run_checks(
    settings: Settings, client: MlflowClient, spec: GateSpec, run: Any, holder: Any
) -> list[Check]:
    values = run_values(run)
    rows = [require_check(text, node, values) for text, node in spec.requires]
    if holder is not None:
        rows.append(versus_check(client, spec, run, holder))
    rows += [data.check(settings) for data in spec.data]
    return rows


def check_alias(alias: str) -> str:
    if (
        not re.fullmatch(r"[A-Za-z0-9_-]+", alias or "")
        or alias in RESERVED_ALIASES
        or re.fullmatch(r"v\d+", alias)
    ):
        raise MLOpsUsageError(
            f"alias {alias!r} is not valid; use letters, digits, '_' and '-' (not 'latest' or vN)"
        )
    return alias


def conclude(
    settings: Settings,
    client: MlflowClient | None,
    result: GateResult,
    warn_only: bool,
    stacklevel: int = 4,
) -> GateResult:
    """Record the decision everywhere (in MLflow unless ``client`` is None: a decision about no
    run and no model version), then raise or warn if it failed; ``stacklevel`` points the
    warning at the caller of the Python API (``mlops.promote`` -> ``promote`` -> here)."""
    reports = write_reports(settings.home, result)
    result = replace(result, reports=reports)
    if client is not None:
        record_in_mlflow(client, result)
    if not result.passed:
        if warn_only or settings.gate_mode == "warn":
            warnings.warn(GateRejected(result).args[0], GateWarning, stacklevel=stacklevel)
        else:
            raise GateRejected(result)
    return result


def promote(
    settings: Settings,
    model: str,
    to: str,
    spec: GateSpec,
    *,
    dry_run: bool = False,
    warn_only: bool = False,
    reason: str | None = None,
    lock_timeout: float = 60.0,
) -> GateResult:
    """Gate ``model`` (NAME, NAME/VERSION or NAME@ALIAS) and point alias ``to`` at it if all pass.

    A plain function of explicit arguments: the magics, the Python API and the server's
    Promote action build the ``spec`` and call it.
    """
    check_alias(to)
    vs = spec.vs
    if vs is not None:
        check_alias(vs)
    client = mlflow_client(settings.tracking_uri)
    candidate = resolve_version(client, model)
    name, number = candidate.name, int(candidate.version)
    holder = resolve_version(client, f"{name}@{vs}") if vs is not None else None
    expected = alias_holder(client, name, to)  # read before waiting: the compare-and-set base
    who = user()
    run = get_run(client, candidate.run_id) if candidate.run_id else None
    if run is None:
        raise MLOpsUsageError(f"{name} v{number} has no run to read metrics from")
    rows = run_checks(settings, client, spec, run, holder)

    moved, now = False, expected
    if all(row.passed for row in rows) and not dry_run:
        with alias_lock(settings.home, name, to, who, lock_timeout):
            now = alias_holder(client, name, to)
            unchanged = now == expected
            rows.append(
                Check(
                    f"{to} unchanged since the gate started",
                    "unset" if now is None else f"v{now}",
                    "unset" if expected is None else f"v{expected}",
                    unchanged,
                    "" if unchanged else MOVED_MEANWHILE,
                    kind=records.CHECK_KIND_ALIAS,
                )
            )
            if unchanged:
                client.set_registered_model_alias(name, to, str(number))
                moved = True
    result = GateResult(
        subject=f"{name} v{number} -> {to}",
        rows=tuple(rows),
        decision="dry-run" if dry_run else ("promoted" if moved else "rejected"),
        model=name,
        version=number,
        alias=to,
        run_id=run.info.run_id,
        moved=moved,
        previous=now,  # where the alias pointed when it moved, or points still
        dry_run=dry_run,
        reason=reason,
        user=who,
        at=timestamp(),
    )
    return conclude(settings, client, result, warn_only)


def gate(
    settings: Settings,
    spec: GateSpec,
    *,
    run_id: str | None = None,
    warn_only: bool = False,
    reason: str | None = None,
) -> GateResult:
    """The same checks on a run (default: the notebook's latest); ``vs`` is NAME@ALIAS here."""
    holder = None
    client = mlflow_client(settings.tracking_uri)
    if spec.vs is not None:
        alias = split_ref(spec.vs)[2]
        if alias is None:
            raise MLOpsUsageError(f"--vs {spec.vs!r}: on a run, name the holder as MODEL@ALIAS")
        holder = resolve_version(client, spec.vs)
    run = get_run(client, run_id) if run_id else latest_run(settings, client)
    rows = run_checks(settings, client, spec, run, holder)
    result = verdict(
        f"run {run.info.run_name or run.info.run_id}", rows, run_id=run.info.run_id, reason=reason
    )
    return conclude(settings, client, result, warn_only)


def verdict(subject: str, rows: Sequence[Check], **recorded: Any) -> GateResult:
    """A decision that moves nothing (``%gate``, ``%drift --fail-on``): passed or failed, stamped
    with who decided and when; ``recorded`` names the run and model version it is kept on."""
    passed = all(row.passed for row in rows)
    return GateResult(
        subject=subject,
        rows=tuple(rows),
        decision="passed" if passed else "failed",
        user=user(),
        at=timestamp(),
        **recorded,
    )


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
