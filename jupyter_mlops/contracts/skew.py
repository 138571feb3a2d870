"""``%skew NAME@ALIAS``: the features an endpoint computed against the same code on training data.

The model version must carry its feature function (``%register --features``). Serving side: the
``feature.<name>`` columns of the version's inference log (``%serve`` writes them). Training
side: the registered function applied to the version's training snapshot (the first DataFrame
among its input snapshots). Each feature's distributions are compared by the drift engine
(Evidently's tests and thresholds); with ``--key COL``, rows of the same key on both sides are
paired and the share whose feature values differ is counted, which finds a serving path that
computes a feature differently even when the distributions look alike.

``--fail-on`` uses the gate grammar (:mod:`jupyter_mlops.registry.checks`) with these names:
``share_drifted``, ``n_drifted``, ``drifted`` (as in ``%drift``), ``column:FEATURE`` (that
feature's statistic), ``mismatch_share`` (paired rows where any feature differs) and
``matched_rows``; each condition is a check of a decision recorded like a promotion's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .. import records
from ..config import Settings
from ..errors import MLOpsUsageError
from ..registry import checks

if TYPE_CHECKING:
    import pandas as pd

    from ..drift.result import DriftResult
    from ..registry.results import GateResult

WORDS = {
    "share_drifted": "share_drifted",
    "n_drifted": "n_drifted",
    "drifted": "drifted",
    "mismatch_share": "mismatch_share",
    "matched_rows": "matched_rows",
}
FAIL_ON = checks.Names(
    flag="--fail-on",
    usage=(
        'write conditions such as "share_drifted > 0" or "mismatch_share > 0.01", joined by "," '
        f'or "or" (names: {", ".join(WORDS)}, column:FEATURE; operators: == != < <= > >=)'
    ),
    kinds=("column",),
    words=tuple(WORDS),
    comma_is_or=True,
)
RELATIVE_TOLERANCE = 1e-6  # paired values closer than this are the same feature value
API_STACKLEVEL = 5  # a warning names the line calling mlops.skew: conclude <- gate <- skew <- api
FEATURE_FIELDS = ("feature", "test", "statistic", "threshold", "drifted", "mismatch_share")


@dataclass(frozen=True)
class SkewResult:
    """Training-time features (the registered function on the training snapshot) against the
    features the endpoint computed; truthy when nothing drifted, no paired row differs and
    every ``--fail-on`` condition passed."""

    model: str
    version: int
    target: str  # NAME@ALIAS as asked
    training: str  # the training snapshot REF
    drift: DriftResult
    key: str | None = None
    matched_rows: int = 0  # keys found on both sides
    mismatches: tuple[tuple[str, float], ...] = ()  # (feature, share of paired rows differing)
    mismatch_share: float = 0.0  # paired rows where any feature differs
    decision: GateResult | None = field(default=None, compare=False)

    @property
    def share_drifted(self) -> float:
        return self.drift.share_drifted

    @property
    def n_drifted(self) -> int:
        return self.drift.n_drifted

    @property
    def drifted(self) -> bool:
        return self.drift.drifted

    @property
    def passed(self) -> bool:
        if self.decision is not None:
            return self.decision.passed
        return self.n_drifted == 0 and self.mismatch_share == 0 and not self.drift.broken

    def __bool__(self) -> bool:
        return self.passed

    @property
    def features(self) -> pd.DataFrame:
        """One row per feature: feature, test, statistic, threshold, drifted, mismatch_share."""
        import pandas as pd

        shares = dict(self.mismatches)
        return pd.DataFrame(
            [
                (r.column, r.test, r.statistic, r.threshold, r.drifted, shares.get(r.column))
                for r in self.drift.results
            ],
            columns=list(FEATURE_FIELDS),
        )

    def headline(self) -> str:
        verdict = "PASSED" if self.passed else "SKEW"
        text = (
            f"skew of {self.target} (v{self.version}): {verdict}: {self.n_drifted} of "
            f"{len(self.drift.results)} features drifted between {self.training} "
            f"({self.drift.reference.rows:,} rows) and serving ({self.drift.current.rows:,} rows)"
        )
        if self.key is not None:
            text += (
                f"; {self.matched_rows:,} rows paired by {self.key}, "
                f"{self.mismatch_share:.1%} differ"
            )
        return text

    def __repr__(self) -> str:
        shares = dict(self.mismatches)
        lines = [self.headline()]
        for r in self.drift.by_severity():
            mark = "DRIFT" if r.drifted else "ok"
            line = f"  [{mark:>5}] {r.column:<20} {r.test} {r.statistic:.4g}"
            line += f" (threshold {r.threshold:g})"
            if r.column in shares:
                line += f", {shares[r.column]:.1%} of paired rows differ"
            lines.append(line)
        lines += [f"  [broken] {c}: {why}" for c, why in self.drift.broken]
        if self.decision is not None:
            lines += self.decision.table_lines()
        return "\n".join(lines)


@dataclass(frozen=True)
class SkewValues:
    """A skew result as the values a ``--fail-on`` condition reads."""

    result: SkewResult

    def get(self, field: checks.Field) -> float:
        from ..drift.gate import DriftValues

        if not field.kind:
            return float(getattr(self.result, WORDS[field.name]))
        return DriftValues(self.result.drift).get(field)  # column:FEATURE, as %drift reads it


def training_features(settings: Settings, version: Any, python_model: Any) -> tuple[str, Any, Any]:
    """(training REF, raw training frame, its features by the registered function)."""
    from ..snapshots import service as snapshots

    refs = records.tag_snapshots(version)[0]
    store = snapshots.open_store(settings)
    for ref in refs:
        if snapshots.describe(store, ref).kind == "dataframe":
            raw = snapshots.load(settings, ref)
            return ref, raw, python_model.compute_features(raw)
    raise MLOpsUsageError(
        f"{version.name} v{version.version} has no DataFrame input snapshot to compute training "
        f"features from (its inputs: {', '.join(refs) or 'none'}); snapshot the training data "
        "inside the %%track run the model is registered from"
    )


def serving_features(traffic: pd.DataFrame, version: int) -> pd.DataFrame:
    """The logged rows of ``version`` that carry features, feature columns renamed back."""
    prefix = records.TRAFFIC_FEATURE_PREFIX
    columns = [c for c in traffic.columns if str(c).startswith(prefix)]
    rows = traffic[traffic[records.TRAFFIC_VERSION].astype(str) == str(version)]
    rows = rows[rows[records.TRAFFIC_STATUS] < 400] if records.TRAFFIC_STATUS in rows else rows
    rows = rows.dropna(subset=columns, how="all") if columns else rows.iloc[0:0]
    return rows.rename(columns={c: c[len(prefix) :] for c in columns})


def paired_mismatches(
    training: pd.DataFrame, serving: pd.DataFrame, features: list[str], key: str
) -> tuple[int, list[tuple[str, float]], float]:
    """(paired rows, per-feature share that differs, share where any differs); the last row of
    a key on each side stands for it."""
    import numpy as np
    import pandas as pd

    left = training.drop_duplicates(key, keep="last").set_index(key)[features]
    right = serving.drop_duplicates(key, keep="last").set_index(key)[features]
    shared = left.index.intersection(right.index)
    if not len(shared):
        return 0, [(f, 0.0) for f in features], 0.0
    a, b = left.loc[shared], right.loc[shared]
    differ = pd.DataFrame(index=shared)
    for name in features:
        x, y = a[name], b[name]
        both_missing = x.isna().to_numpy() & y.isna().to_numpy()
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            same = np.isclose(
                x.to_numpy(dtype="float64"),
                y.to_numpy(dtype="float64"),
                rtol=RELATIVE_TOLERANCE,
                atol=0.0,
            )
        else:
            same = x.astype(str).to_numpy() == y.astype(str).to_numpy()
        differ[name] = ~(same | both_missing)
    shares = [(name, float(differ[name].mean())) for name in features]
    return len(shared), shares, float(differ.any(axis=1).mean())


def skew(
    settings: Settings,
    target: str,
    *,
    since: Any = None,
    key: str | None = None,
    fail_on: str | None = None,
) -> SkewResult:
    """Compare, then conclude ``fail_on`` (a failed condition raises GateFailed, or warns with
    ``gate_mode=warn``)."""
    result = compare(settings, target, since=since, key=key, fail_on=fail_on)
    if fail_on is None:
        return result
    return with_decision(result, gate(settings, result, fail_on))


def with_decision(result: SkewResult, decision: GateResult) -> SkewResult:
    return replace(result, decision=decision)


def compare(
    settings: Settings,
    target: str,
    *,
    since: Any = None,
    key: str | None = None,
    fail_on: str | None = None,
) -> SkewResult:
    """Training-time against serving-time features of the version ``target`` names (no gate;
    ``fail_on`` is only parsed, so a typo costs nothing)."""
    from ..drift.engine import compute_drift
    from ..registry.models import load_model, resolve_version, split_ref
    from ..serving.traffic import read_traffic
    from ..tracking.client import mlflow_client

    name, _, alias = split_ref(target)
    if fail_on is not None:
        checks.parse(fail_on, FAIL_ON)
    version = resolve_version(mlflow_client(settings.tracking_uri), target)
    number = int(version.version)
    python_model = load_model(settings, f"{name}/{number}").unwrap_python_model()
    if not callable(getattr(python_model, "compute_features", None)):
        raise MLOpsUsageError(
            f"{name} v{number} carries no feature function; register it with "
            f"%register MODEL --name {name} --features FUNC"
        )
    training_ref, raw, training = training_features(settings, version, python_model)
    serving = serving_features(read_traffic(settings, name, alias, since), number)
    if serving.empty:
        window = f" since {since}" if since is not None else ""
        raise MLOpsUsageError(
            f"no features logged for {target} v{number}{window}; serve it (%serve {target}) "
            "and send requests first"
        )
    features = [c for c in training.columns if c in serving.columns]
    if not features:
        raise MLOpsUsageError(
            f"the endpoint logged features {', '.join(serving.columns)} but the registered "
            f"function computes {', '.join(map(str, training.columns))}: none in common"
        )
    drift = compute_drift(
        training[features],
        serving[features],
        reference_label=f"features of {training_ref}",
        current_label=f"served by {target}",
    )
    matched, any_share = 0, 0.0
    mismatches: list[tuple[str, float]] = []
    if key is not None:
        for side, frame in (("training snapshot", raw), ("inference log", serving)):
            if key not in frame.columns:
                raise MLOpsUsageError(f"--key {key!r} is not a column of the {side}")
        keyed = training[features].assign(**{key: raw[key].to_numpy()})
        matched, mismatches, any_share = paired_mismatches(keyed, serving, features, key)
    return SkewResult(
        name, number, target, training_ref, drift, key, matched, tuple(mismatches), any_share
    )


def gate(settings: Settings, result: SkewResult, fail_on: str) -> GateResult:
    """Each top-level ``fail_on`` condition as a check; the decision is recorded on the model
    version (and its run, and ``<home>/reports/``) like a promotion's."""
    from ..drift.gate import condition_check, conditions
    from ..registry.gates import conclude, verdict
    from ..tracking.client import mlflow_client

    labels = (result.drift.reference.label, result.drift.current.label)
    values = SkewValues(result)
    rows = [
        condition_check(node, values, labels, kind=records.CHECK_KIND_SKEW)
        for node in conditions(checks.parse(fail_on, FAIL_ON))
    ]
    client = mlflow_client(settings.tracking_uri)
    run_id = client.get_model_version(result.model, str(result.version)).run_id
    decision = verdict(
        f"skew {result.target} v{result.version}",
        rows,
        model=result.model,
        version=result.version,
        run_id=run_id or None,
    )
    return conclude(settings, client, decision, False, stacklevel=API_STACKLEVEL)
