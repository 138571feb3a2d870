"""Drift engines, registered by name: ``fast`` (ours, numpy/scipy) and ``evidently`` (optional).

Both read the same :class:`ColumnTests` and return the same :class:`DriftResult`, so the promotion
gate, the magic and the parity check never care which one ran.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import MLOpsUsageError
from .columns import (
    CATEGORICAL,
    NUMERICAL,
    TEXT,
    PreparedColumn,
    broken_columns,
    column_type,
    prepare,
)
from .result import ColumnDrift, DataSide, Distribution, DriftResult
from .stattests import TESTS, default_test, histogram, named_test

if TYPE_CHECKING:
    import pandas as pd

PLOT_BINS = 20
PLOT_CATEGORIES = 12


@dataclass(frozen=True)
class ColumnTests:
    """Which tests and thresholds to use; ``None`` means Evidently's default for the column."""

    method: str | None = None
    threshold: float | None = None
    per_column_method: Mapping[str, str] = field(default_factory=dict)
    per_column_threshold: Mapping[str, float] = field(default_factory=dict)
    drift_share: float = 0.5

    def method_for(self, column: str) -> str | None:
        return self.per_column_method.get(column, self.method)

    def threshold_for(self, column: str) -> float | None:
        return self.per_column_threshold.get(column, self.threshold)


class Engine(Protocol):
    name: str

    def compute(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        columns: Sequence[str],
        options: ColumnTests,
    ) -> tuple[list[ColumnDrift], list[tuple[str, str]]]: ...


ENGINES: dict[str, Engine] = {}


def register_engine(engine: Engine) -> Engine:
    ENGINES[engine.name] = engine
    return engine


def typed_columns(
    current: pd.DataFrame, columns: Sequence[str], *, explicit: bool
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Evidently's type of each column; untestable ones are an error when named, else skipped."""
    kinds: dict[str, str] = {}
    skipped: list[tuple[str, str]] = []
    for name in columns:
        kind = column_type(current[name])
        if kind in (NUMERICAL, CATEGORICAL):
            kinds[name] = kind
            continue
        why = (
            "text: mostly distinct strings"
            if kind == TEXT
            else f"dtype {current[name].dtype} is neither numerical nor categorical"
        )
        if explicit:
            raise MLOpsUsageError(
                f"cannot test column {name!r} for drift ({why}); leave it out of --columns"
            )
        skipped.append((name, why))
    return kinds, skipped


class FastEngine:
    """Vectorised numpy/scipy statistics; columns run in parallel threads (numpy drops the GIL)."""

    name = "fast"

    def compute(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        columns: Sequence[str],
        options: ColumnTests,
    ) -> tuple[list[ColumnDrift], list[tuple[str, str]]]:
        kinds, skipped = typed_columns(current, columns, explicit=False)

        def one(name: str) -> ColumnDrift | tuple[str, str]:
            column = prepare(name, kinds[name], reference[name], current[name])
            for label, size in (("reference", column.n_reference), ("current", column.n_current)):
                if size == 0:
                    return (name, f"no values in the {label} data")
            return score_column(column, options)

        workers = min(len(kinds), os.cpu_count() or 1) or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(one, kinds))
        results = [o for o in outcomes if isinstance(o, ColumnDrift)]
        skipped += [o for o in outcomes if not isinstance(o, ColumnDrift)]
        return results, skipped


def score_column(column: PreparedColumn, options: ColumnTests) -> ColumnDrift:
    chosen = options.method_for(column.name)
    test = named_test(chosen, column) if chosen else default_test(column)
    threshold = options.threshold_for(column.name)
    threshold = test.default_threshold if threshold is None else threshold
    score = test.score(column)
    return ColumnDrift(
        column=column.name,
        kind=column.kind,
        test=test.name,
        statistic=score,
        threshold=threshold,
        drifted=test.detects(score, threshold),
        is_p_value=test.is_p_value,
        distribution=distribution(column),
    )


def distribution(column: PreparedColumn) -> Distribution:
    """Shares per bin (numerical) or for the most common values (few values, categories)."""
    import numpy as np

    if column.kind == NUMERICAL:
        low = min(column.reference[0], column.current[0])
        high = max(column.reference[-1], column.current[-1])
        edges = np.linspace(low, high, PLOT_BINS + 1)
        shares = [histogram(side, edges) / side.size for side in (column.reference, column.current)]
        return Distribution(
            tuple(np.round(shares[0], 6).tolist()),
            tuple(np.round(shares[1], 6).tolist()),
            edges=tuple(float(e) for e in edges),
        )
    keys, ref_counts, cur_counts = column.frequencies
    order = np.argsort(-(ref_counts + cur_counts), kind="stable")
    top, rest = order[:PLOT_CATEGORIES], order[PLOT_CATEGORIES:]
    labels = [str(keys[i]) for i in top]
    ref = (ref_counts[top] / column.n_reference).tolist()
    cur = (cur_counts[top] / column.n_current).tolist()
    if rest.size:
        labels.append(f"other ({rest.size})")
        ref.append(float(ref_counts[rest].sum() / column.n_reference))
        cur.append(float(cur_counts[rest].sum() / column.n_current))
    return Distribution(
        tuple(round(v, 6) for v in ref), tuple(round(v, 6) for v in cur), labels=tuple(labels)
    )


class EvidentlyEngine:
    """Evidently 0.7's DataDriftPreset itself (needs ``pip install "jupyter-mlops[evidently]"``)."""

    name = "evidently"

    def compute(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        columns: Sequence[str],
        options: ColumnTests,
    ) -> tuple[list[ColumnDrift], list[tuple[str, str]]]:
        evidently = import_evidently()
        kinds, skipped = typed_columns(current, columns, explicit=False)
        tested = list(kinds)
        preset = evidently.presets.DataDriftPreset(
            columns=tested,
            method=options.method,
            threshold=options.threshold,
            per_column_method=dict(options.per_column_method) or None,
            per_column_threshold=dict(options.per_column_threshold) or None,
            drift_share=options.drift_share,
        )
        with warnings.catch_warnings():  # scipy's chisquare warns on categories new in current
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                snapshot = evidently.Report([preset]).run(current[tested], reference[tested])
            except ValueError as exc:  # e.g. a column with no values on one side
                raise MLOpsUsageError(f"evidently refused the data: {exc}") from None
        scores: dict[str, tuple[str, float, float]] = {}
        for metric in snapshot.dict()["metrics"]:
            config = metric.get("config", {})
            if config.get("type", "").endswith("ValueDrift"):
                scores[config["column"]] = (
                    config["method"],
                    float(metric["value"]),
                    float(config["threshold"]),
                )
        results = []
        for name in tested:
            column = prepare(name, kinds[name], reference[name], current[name])
            method, score, threshold = scores[name]
            test = TESTS[_METHOD_NAMES.get(method, method)]
            results.append(
                ColumnDrift(
                    column=name,
                    kind=column.kind,
                    test=test.name,
                    statistic=score,
                    threshold=threshold,
                    drifted=test.detects(score, threshold),
                    is_p_value=test.is_p_value,
                    distribution=distribution(column),
                )
            )
        return results, skipped


# Evidently's metric configs name tests by display name ("K-S p_value") in some versions.
_METHOD_NAMES = {
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "PSI": "psi",
    "Kullback-Leibler divergence": "kl_div",
    "Hellinger distance": "hellinger",
}


def import_evidently() -> Any:
    try:
        import evidently
        import evidently.presets
    except Exception as exc:  # under pandas 3 evidently 0.7 fails with an ImportError inside pandas
        raise MLOpsUsageError(
            f"the evidently engine cannot import evidently here ({type(exc).__name__}: "
            f"{(str(exc) or repr(exc)).splitlines()[0]}); install it in an environment with "
            'pandas<3: pip install "jupyter-mlops[evidently]", or use --engine fast'
        ) from None
    return evidently


register_engine(FastEngine())
register_engine(EvidentlyEngine())


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    engine: str = "fast",
    method: str | None = None,
    threshold: float | None = None,
    per_column_method: Mapping[str, str] | None = None,
    per_column_threshold: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    sample: int | None = None,
    reference_label: str = "reference",
    current_label: str = "current",
) -> DriftResult:
    """Compare two DataFrames column by column with Evidently's DataDriftPreset defaults.

    ``method``/``threshold`` apply to every column, ``per_column_*`` override them by name.
    ``sample`` compares a seeded random sample of at most that many rows per side (opt-in).
    """
    import pandas as pd

    for label, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise MLOpsUsageError(
                f"the {label} data is a {type(frame).__name__}, not a pandas DataFrame"
            )
    if engine not in ENGINES:
        raise MLOpsUsageError(
            f"unknown drift engine {engine!r}; choose one of: {', '.join(ENGINES)}"
        )
    if not 0 < drift_share <= 1:
        raise MLOpsUsageError(f"drift_share must be in (0, 1], got {drift_share}")
    explicit = columns is not None
    names = (
        list(columns)
        if columns is not None
        else [c for c in current.columns if c in reference.columns]
    )
    missing = [
        f"{name!r} (not in the {label} data)"
        for name in (names if explicit else list(reference.columns) + list(current.columns))
        for label, frame in (("reference", reference), ("current", current))
        if name not in frame.columns
    ]
    if missing:
        raise MLOpsUsageError(
            f"columns missing: {', '.join(dict.fromkeys(missing))}; "
            "rename them or pick common ones with --columns"
        )
    if not names:
        raise MLOpsUsageError("no columns to compare: the two frames share no column names")
    named = set(per_column_method or {}) | set(per_column_threshold or {})
    unknown = sorted(str(c) for c in named if c not in names)
    if unknown:
        raise MLOpsUsageError(f"per-column settings name unknown columns: {', '.join(unknown)}")
    broken = broken_columns(reference, current, names)
    names = [name for name in names if name not in broken]
    if explicit:
        typed_columns(current, names, explicit=True)
    options = ColumnTests(
        method=method,
        threshold=threshold,
        per_column_method={k: v for k, v in (per_column_method or {}).items() if k in names},
        per_column_threshold={k: v for k, v in (per_column_threshold or {}).items() if k in names},
        drift_share=drift_share,
    )
    n_reference, n_current = len(reference), len(current)
    if sample is not None:
        if sample < 1:
            raise MLOpsUsageError(f"sample must be a positive row count, got {sample}")
        reference = reference.sample(n=min(sample, n_reference), random_state=0)
        current = current.sample(n=min(sample, n_current), random_state=0)
    results, skipped = (
        ENGINES[engine].compute(reference, current, names, options) if names else ([], [])
    )
    if not results and not broken:
        raise MLOpsUsageError(
            "no column could be tested: " + "; ".join(f"{c} ({why})" for c, why in skipped)
        )
    return DriftResult(
        results=tuple(results),
        reference=DataSide(reference_label, n_reference),
        current=DataSide(current_label, n_current),
        drift_share=drift_share,
        engine=engine,
        skipped=tuple(skipped),
        broken=tuple(broken.items()),
        sample=sample,
    )
