"""Per-window statistics of logged requests against the reference: the computation, no I/O.

Each window gets: volume and latency, feature drift (the drift engine, Evidently's verdicts),
prediction drift (the logged outputs against the model's outputs on the reference), data quality
against the reference, and quality and outcome aggregates where feedback arrived.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import records
from ..drift.engine import compute_drift
from ..drift.result import DriftResult
from ..errors import MLOpsUsageError
from .feedback import KEY, REQUEST_ID, ROW

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# The inference log's own columns (serving writes them; everything else is an input or output).
TIMESTAMP = records.TRAFFIC_TIMESTAMP
LATENCY = records.TRAFFIC_LATENCY_MS
STATUS = records.TRAFFIC_STATUS
META_COLUMNS = records.TRAFFIC_FIXED_COLUMNS
PREDICTION = records.TRAFFIC_PREDICTION
FEATURE_PREFIX = records.TRAFFIC_FEATURE_PREFIX
OUTCOME_PREFIX = "outcome."
OK_STATUS = 200

CLASSIFICATION = ("accuracy", "f1", "roc_auc")
REGRESSION = ("mae", "rmse")
WINDOW_COLUMNS = (
    "window",
    "requests",
    "rows",
    "error_share",
    "latency_p50_ms",
    "latency_p95_ms",
    "share_drifted",
    "n_drifted",
    "drifted",
    "drifted_columns",
    "prediction_drift",
    "prediction_drifted",
    "missing_share",
    "unseen_share",
    "out_of_range_share",
    "type_changes",
    "broken_columns",
    "labelled",
)


@dataclass(frozen=True)
class Columns:
    """Which logged columns are monitored inputs and which are the model's outputs."""

    inputs: tuple[str, ...]
    predictions: tuple[str, ...]


def split_columns(traffic: pd.DataFrame, reference: pd.DataFrame) -> Columns:
    """Inputs: logged columns the reference also has; outputs: ``prediction[.NAME]``."""
    predictions = tuple(
        c for c in traffic.columns if c == PREDICTION or str(c).startswith(PREDICTION + ".")
    )
    candidates = [
        c
        for c in traffic.columns
        if c not in META_COLUMNS
        and c not in predictions
        and not str(c).startswith(FEATURE_PREFIX)
        and not str(c).startswith(OUTCOME_PREFIX)
    ]
    inputs = tuple(c for c in candidates if c in reference.columns)
    if not inputs:
        raise MLOpsUsageError(
            f"the logged requests share no input column with the reference (logged: "
            f"{', '.join(map(str, candidates[:12])) or 'none'}; reference: "
            f"{', '.join(map(str, list(reference.columns)[:12]))}); pass --reference with the "
            "data the model was trained on"
        )
    return Columns(inputs, predictions)


@dataclass
class WindowStats:
    """Everything computed for the monitored span."""

    frame: pd.DataFrame  # one row per window, WINDOW_COLUMNS + quality + outcome columns
    reports: dict[Any, DriftResult] = field(default_factory=dict)  # window start -> feature drift
    notes: list[str] = field(default_factory=list)
    task: str | None = None  # classification or regression, once labels arrived


def window_edges(timestamps: pd.Series, size: pd.Timedelta, since: Any, until: Any) -> Any:
    import pandas as pd

    start = (since if since is not None else timestamps.min()).floor(size)
    end = until.ceil(size) if until is not None else timestamps.max().floor(size) + size
    return pd.date_range(start, end, freq=size)


def compute_windows(
    traffic: pd.DataFrame,
    reference: pd.DataFrame,
    columns: Columns,
    size: pd.Timedelta,
    *,
    reference_predictions: pd.DataFrame | None = None,
    feedback: pd.DataFrame | None = None,
    since: Any = None,
    until: Any = None,
    reference_label: str = "reference",
    current_label: str = "window",
) -> WindowStats:
    import numpy as np
    import pandas as pd

    if not traffic[TIMESTAMP].is_monotonic_increasing:  # the log is read in order: no copy
        traffic = traffic.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
    stats = WindowStats(pd.DataFrame())
    enriched = _join_feedback(traffic, feedback, stats)
    task = _task(enriched) if enriched is not None else None
    stats.task = task
    outcome_names = _outcome_columns(feedback, stats) if enriched is not None else []
    quality = _Quality(reference, columns.inputs)
    edges = window_edges(traffic[TIMESTAMP], size, since, until)
    bounds = np.searchsorted(_naive(traffic[TIMESTAMP]), _naive(edges), side="left")
    rows = []
    ref_inputs = reference[list(columns.inputs)]
    for index, start in enumerate(edges[:-1]):
        part = traffic.iloc[bounds[index] : bounds[index + 1]]
        row: dict[str, Any] = dict.fromkeys(WINDOW_COLUMNS, np.nan)
        requests = part[REQUEST_ID].nunique() if REQUEST_ID in part else len(part)
        row.update(window=start, requests=requests, rows=len(part), labelled=0)
        if len(part):
            row.update(_volume(part))
            label = f"{current_label} {start:%Y-%m-%d %H:%M}"
            report = _drift(ref_inputs, part[list(columns.inputs)], reference_label, label, stats)
            if report is not None:
                stats.reports[start] = report
                row.update(
                    share_drifted=report.share_drifted,
                    n_drifted=report.n_drifted,
                    drifted=report.drifted,
                    drifted_columns=", ".join(r.column for r in report.results if r.drifted),
                    broken_columns=report.n_broken,
                )
            if reference_predictions is not None:
                row.update(_prediction_drift(reference_predictions, part, start, stats))
            row.update(quality.of(part))
            if enriched is not None:
                got = enriched.iloc[bounds[index] : bounds[index + 1]]
                if task is not None:
                    row.update(_scores(got, columns.predictions, task))
                for name in outcome_names:
                    values = pd.to_numeric(got[name], errors="coerce")
                    row[OUTCOME_PREFIX + name] = (
                        float(values.mean()) if values.notna().any() else np.nan
                    )
        rows.append(row)
    metric_names = list(CLASSIFICATION if task == "classification" else ())
    metric_names += list(REGRESSION if task == "regression" else ())
    ordered = [*WINDOW_COLUMNS, *metric_names, *(OUTCOME_PREFIX + n for n in outcome_names)]
    frame = pd.DataFrame(rows)
    for name in ordered:
        if name not in frame:
            frame[name] = np.nan
    stats.frame = frame[ordered]
    return stats


def _naive(stamps: Any) -> np.ndarray:
    """UTC times as datetime64 (a tz-aware to_numpy() builds one Timestamp object per row)."""
    import pandas as pd

    if isinstance(stamps, pd.Series):
        stamps = pd.DatetimeIndex(stamps)
    if stamps.tz is not None:
        stamps = stamps.tz_convert("UTC").tz_localize(None)
    return stamps.to_numpy()


def _volume(part: pd.DataFrame) -> dict[str, float]:
    import numpy as np
    import pandas as pd

    found: dict[str, float] = {}
    if STATUS in part:
        status = pd.to_numeric(part[STATUS], errors="coerce")
        found["error_share"] = float((status != OK_STATUS).mean())
    if LATENCY in part:
        latency = pd.to_numeric(part[LATENCY], errors="coerce").dropna().to_numpy()
        if latency.size:
            found["latency_p50_ms"] = float(np.percentile(latency, 50))
            found["latency_p95_ms"] = float(np.percentile(latency, 95))
    return found


def _drift(
    reference: pd.DataFrame, current: pd.DataFrame, label: str, window: str, stats: WindowStats
) -> DriftResult | None:
    try:
        return compute_drift(reference, current, reference_label=label, current_label=window)
    except MLOpsUsageError as exc:
        stats.notes.append(f"{window}: no feature drift ({exc})")
        return None


def _prediction_drift(
    reference: pd.DataFrame, part: pd.DataFrame, start: Any, stats: WindowStats
) -> dict[str, Any]:
    names = [c for c in reference.columns if c in part.columns]
    if not names:
        return {}
    try:
        result = compute_drift(reference[names], part[names])
    except MLOpsUsageError as exc:
        stats.notes.append(f"window {start:%Y-%m-%d %H:%M}: no prediction drift ({exc})")
        return {}
    if not result.results:
        return {}
    first = result.results[0]
    return {"prediction_drift": first.statistic, "prediction_drifted": result.drifted}


class _Quality:
    """Data quality of a window against the reference: missing values, unseen categories,
    values outside the reference's range, changed types."""

    def __init__(self, reference: pd.DataFrame, inputs: Sequence[str]) -> None:
        import pandas as pd

        self.inputs = list(inputs)
        self.numeric = {
            c: (reference[c].min(), reference[c].max())
            for c in inputs
            if pd.api.types.is_numeric_dtype(reference[c])
            and not pd.api.types.is_bool_dtype(reference[c])
        }
        self.categories = {
            c: set(reference[c].dropna().unique().tolist()) for c in inputs if c not in self.numeric
        }

    def of(self, part: pd.DataFrame) -> dict[str, float]:
        import pandas as pd

        values = part[self.inputs]
        missing = float(values.isna().to_numpy().mean()) if values.size else 0.0
        outside = total = unseen = seen = 0
        changed = 0
        for column, (low, high) in self.numeric.items():
            if not pd.api.types.is_numeric_dtype(values[column]):
                changed += 1
                continue
            present = values[column].dropna()
            total += len(present)
            outside += int(((present < low) | (present > high)).sum())
        for column, known in self.categories.items():
            became_numbers = pd.api.types.is_numeric_dtype(
                values[column]
            ) and not pd.api.types.is_bool_dtype(values[column])
            if became_numbers and known and not any(isinstance(k, int | float) for k in known):
                changed += 1
                continue
            present = values[column].dropna()
            seen += len(present)
            unseen += int((~present.isin(known)).sum())
        return {
            "missing_share": missing,
            "out_of_range_share": outside / total if total else 0.0,
            "unseen_share": unseen / seen if seen else 0.0,
            "type_changes": float(changed),
        }


def _join_feedback(
    traffic: pd.DataFrame, feedback: pd.DataFrame | None, stats: WindowStats
) -> pd.DataFrame | None:
    """The logged requests with their label and outcome columns (NaN where none arrived)."""
    if feedback is None or REQUEST_ID not in traffic:
        return None
    extra = [c for c in feedback.columns if c not in KEY and c not in traffic.columns]
    keys = traffic[[REQUEST_ID]].astype({REQUEST_ID: str})
    keys[ROW] = keys.groupby(REQUEST_ID).cumcount()
    joined = keys.merge(feedback[[*KEY, *extra]], how="left", on=list(KEY))
    if not joined[extra].notna().to_numpy().any():
        stats.notes.append("feedback arrived for none of these requests: no quality metrics yet")
        return None
    out = traffic.copy()
    for column in extra:
        out[column] = joined[column].to_numpy()
    return out


def _task(enriched: pd.DataFrame) -> str | None:
    """classification or regression, from the labels; None before any label arrived."""
    import numpy as np
    import pandas as pd

    if records.FEEDBACK_LABEL not in enriched:
        return None
    labels = enriched[records.FEEDBACK_LABEL].dropna()
    if labels.empty:
        return None
    numeric = pd.to_numeric(labels, errors="coerce")
    if (
        numeric.notna().all()
        and pd.api.types.is_float_dtype(numeric)
        and (not np.allclose(numeric, np.round(numeric)) or numeric.nunique() > 20)
    ):
        return "regression"
    return "classification"


def _outcome_columns(feedback: pd.DataFrame | None, stats: WindowStats) -> list[str]:
    import pandas as pd

    if feedback is None:
        return []
    names = []
    for column in feedback.columns:
        if column in (*KEY, records.FEEDBACK_LABEL):
            continue
        if pd.api.types.is_numeric_dtype(feedback[column]):
            names.append(str(column))
        else:
            stats.notes.append(f"outcome {column!r} is not numeric: not aggregated")
    return names


def _scores(part: pd.DataFrame, predictions: Sequence[str], task: str) -> dict[str, float]:
    import numpy as np
    import pandas as pd

    got = part[part[records.FEEDBACK_LABEL].notna()]
    found: dict[str, float] = {"labelled": float(len(got))}
    if got.empty or not predictions:
        return found
    labels = got[records.FEEDBACK_LABEL]
    predicted = got[predictions[0]]
    if task == "regression":
        error = pd.to_numeric(predicted, errors="coerce").to_numpy(float) - pd.to_numeric(
            labels
        ).to_numpy(float)
        found["mae"] = float(np.nanmean(np.abs(error)))
        found["rmse"] = float(np.sqrt(np.nanmean(error**2)))
        return found
    score = _probability(got, predictions, labels)
    if score is not None and score.name == predicted.name:
        predicted = (score >= 0.5).astype(int)
    y_true, y_pred = _comparable(labels), _comparable(predicted)
    found["accuracy"] = float((y_true == y_pred).mean())
    found["f1"] = _f1(y_true, y_pred)
    if score is not None:
        found["roc_auc"] = _roc_auc(y_true, score.to_numpy(float))
    return found


def _comparable(values: pd.Series) -> np.ndarray:
    """Labels and predictions as the same kind of value (1 and 1.0 and "1" are one class)."""
    import numpy as np
    import pandas as pd

    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(float)
    return np.asarray(values.astype(str))


def _probability(
    got: pd.DataFrame, predictions: Sequence[str], labels: pd.Series
) -> pd.Series | None:
    """A predicted probability of the positive class, when the labels are binary and an output
    column holds values in [0, 1] that are not all 0/1."""
    import pandas as pd

    values = set(_comparable(labels).tolist())
    if not values <= {0.0, 1.0}:
        return None
    for name in predictions:
        column = pd.to_numeric(got[name], errors="coerce")
        if column.notna().all() and column.between(0, 1).all() and not column.isin([0, 1]).all():
            return column.rename(name)
    return None


def _f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Binary F1 of class 1 (or of the larger class) for two classes, else macro F1."""
    import numpy as np

    classes = np.unique(np.concatenate([y_true, y_pred]))
    if len(classes) <= 2:
        positive = 1.0 if 1.0 in classes.tolist() else classes[-1]
        chosen = [positive]
    else:
        chosen = list(classes)
    scores = []
    for label in chosen:
        tp = float(np.sum((y_pred == label) & (y_true == label)))
        fp = float(np.sum((y_pred == label) & (y_true != label)))
        fn = float(np.sum((y_pred != label) & (y_true == label)))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def _roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties averaged."""
    from scipy.stats import rankdata

    positive = y_true == 1.0
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
