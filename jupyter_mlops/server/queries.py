"""Read-side glue of the REST API: the capability cores' data as typed payloads.

Every function takes explicit :class:`Settings` (resolved for the notebook's folder, never the
server's cwd) and never creates a store: browsing an empty folder answers with empty lists.
Unknown names raise ``MLOpsNotFound`` (the one 404, mapped in ``handlers.MLOpsHandler.call``);
malformed input raises ``MLOpsUsageError``.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import records
from ..config import Settings, is_url
from ..errors import MLOpsNotFound, MLOpsUsageError
from ..registry import service as registry
from ..registry.models import run_snapshots
from ..registry.service import get_registered
from ..tracking import compare as comparing
from ..tracking import query
from ..tracking.query import check_run_id, existing_client
from .models import (
    ColumnInfo,
    ComparePayload,
    CompareRun,
    Curve,
    DiffPayload,
    DriftList,
    DriftReport,
    DriftReportInfo,
    ModelDetail,
    ModelList,
    ModelSummary,
    ModelVersionInfo,
    RunDetail,
    RunsPage,
    RunSummary,
    SnapshotDetail,
    SnapshotList,
    SnapshotName,
    SnapshotVersion,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from ..snapshots.repository import SnapshotStore

MAX_CURVE_POINTS = 500
MAX_COMPARE = 20
DRIFT_FOLDER = records.DRIFT_FOLDER
__all__ = ["check_run_id", "client_for", "get_registered"]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


client_for = existing_client


# --- runs -----------------------------------------------------------------------------------------


def summary(run: Any) -> RunSummary:
    return RunSummary(
        run_id=run.info.run_id,
        name=run.info.run_name or run.info.run_id[:8],
        status=run.info.status,
        start_time=run.info.start_time,
        end_time=run.info.end_time,
        params=dict(sorted(run.data.params.items())),
        metrics={k: _finite(v) for k, v in sorted(run.data.metrics.items())},
    )


def runs_page(
    settings: Settings,
    limit: int = 100,
    page_token: str | None = None,
    sort: str | None = None,
    filter: str | None = None,
) -> RunsPage:
    found = query.page(settings, limit, page_token, sort, filter)
    runs = [summary(run) for run in found.runs]
    return RunsPage(
        experiment=found.experiment,
        runs=runs,
        next_page_token=found.next_page_token,
        metric_keys=sorted({k for r in runs for k in r.metrics}),
        param_keys=sorted({k for r in runs for k in r.params}),
    )


_get_run = query.get_run


def _thin(history: list[Any]) -> Curve:
    points = sorted(history, key=lambda m: (m.step, m.timestamp))
    stride = max(1, math.ceil(len(points) / MAX_CURVE_POINTS))
    kept = points[::stride]
    if points and kept[-1] is not points[-1]:
        kept.append(points[-1])
    return Curve([m.step for m in kept], [_finite(m.value) for m in kept])


_artifacts = query.artifact_paths  # server.browse lists a run's artifacts with it


def _artifact_text(client: MlflowClient, run_id: str, path: str) -> str:
    """A small text artifact; read in place from local stores (no copy, no progress bar)."""
    from urllib.parse import unquote, urlparse

    root = urlparse(client.get_run(run_id).info.artifact_uri)
    if root.scheme in ("", "file"):
        return (Path(unquote(root.path)) / path).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="mlops-server-") as folder:
        local = client.download_artifacts(run_id, path, folder)
        return Path(local).read_text(encoding="utf-8")


def run_detail(settings: Settings, run_id: str) -> RunDetail:
    found = query.run_record(settings, run_id)
    tags = found.tags
    return RunDetail(
        run=summary(found.run),
        experiment=found.experiment,
        tags=tags,
        inputs=run_snapshots(found.run)[0],
        artifacts=found.artifacts,
        cell_source=found.cell_source,
        notebook=tags.get(records.TAG_NOTEBOOK),
        cell_id=tags.get(records.TAG_CELL_ID),
        curves={key: _thin(points) for key, points in found.histories.items()},
    )


# --- snapshots ------------------------------------------------------------------------------------


def _open_snapshots(settings: Settings) -> SnapshotStore | None:
    from ..snapshots.service import open_store

    location = settings.snapshot_store
    if not is_url(location) and not Path(location).is_dir():
        return None
    return open_store(settings)


def _versions(store: SnapshotStore, name: str | None = None) -> list[SnapshotVersion]:
    from ..snapshots.catalog import list_versions

    frame = list_versions(store, name)
    return [
        SnapshotVersion(
            version=int(row["version"]),
            ref=row["ref"],
            id=row["id"],
            kind=row["kind"],
            rows=None if _missing(row["rows"]) else int(row["rows"]),
            columns=None if _missing(row["columns"]) else int(row["columns"]),
            bytes=int(row["bytes"]),
            created=None if _missing(row["created"]) else str(row["created"]),
            message=row["message"],
            notebook=row["notebook"],
            error=row["error"] or None,
        )
        for row in frame.to_dict("records")
    ]


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def snapshot_list(settings: Settings) -> SnapshotList:
    store = _open_snapshots(settings)
    if store is None:
        return SnapshotList([])
    by_name: dict[str, list[SnapshotVersion]] = {}
    for version in _versions(store):
        by_name.setdefault(version.ref.rsplit("@", 1)[0], []).append(version)
    return SnapshotList([SnapshotName(name, versions) for name, versions in by_name.items()])


def snapshot_detail(
    settings: Settings, name: str, version: int | None = None, against: int | None = None
) -> SnapshotDetail:
    from ..snapshots import diff as diffing
    from ..snapshots.names import check_name
    from ..snapshots.service import describe

    check_name(name)
    store = _open_snapshots(settings)
    numbers = store.versions(name) if store is not None else []
    if store is None or not numbers:
        raise MLOpsNotFound(f"no snapshot named {name!r} in this store")
    chosen = numbers[-1] if version is None else version
    for wanted in (chosen, against):
        if wanted is not None and wanted not in numbers:
            raise MLOpsNotFound(
                f"{name} has no version v{wanted}; it has v{numbers[0]}..v{numbers[-1]}"
            )
    resolved = store.resolve(f"{name}@v{chosen}")
    schema = [ColumnInfo(**asdict(c)) for c in describe(store, resolved.ref).columns]
    comparison = None
    if against is not None:
        older = store.resolve(f"{name}@v{against}")
        result = diffing.diff(store, older, resolved)
        comparison = DiffPayload(
            a=result.a,
            b=result.b,
            identical=result.identical,
            rows=result.rows_line(),
            changes=[
                {"column": c.column, "change": c.change, "detail": c.detail} for c in result.changes
            ],
            stat_shifts=[
                {"column": s.column, "stat": s.stat, "before": s.before, "after": s.after}
                for s in result.stat_shifts
            ],
            unchanged=result.unchanged,
            text=repr(result),
        )
    return SnapshotDetail(name, _versions(store, name), chosen, schema, comparison)


# --- models ---------------------------------------------------------------------------------------


def model_list(settings: Settings) -> ModelList:
    """Every registered model; one that cannot be read is a row saying why, not a failed list."""
    return ModelList([ModelSummary(**asdict(row)) for row in registry.models(settings)])


def model_detail(settings: Settings, name: str) -> ModelDetail:
    """A model's versions with their gate history, read from MLflow (as ``%lineage`` reads it)."""
    found = registry.model(settings, name)
    versions = [
        ModelVersionInfo(**{**asdict(v), "metrics": {k: _finite(x) for k, x in v.metrics.items()}})
        for v in found.versions
    ]
    return ModelDetail(found.name, found.aliases, versions)


# --- compare --------------------------------------------------------------------------------------


def compare(settings: Settings, run_ids: list[str]) -> ComparePayload:
    """``%compare``'s Comparison keyed by run id (runs sharing a name stay apart)."""
    if len(run_ids) > MAX_COMPARE:
        raise MLOpsUsageError(f"{len(run_ids)} runs: compare at most {MAX_COMPARE} at a time")
    for run_id in run_ids:
        check_run_id(run_id)
    if not query.store_exists(settings):
        raise MLOpsNotFound(f"no run {run_ids[0]!r}: this store has no runs yet")
    found = comparing.compare(settings, run_ids)
    ids = dict(zip(found.labels, found.run_ids, strict=True))

    def by_id(frame: Any) -> dict[str, dict[str, Any]]:
        return {
            str(key): {
                ids[label]: (None if _missing(value) else _plain(value))
                for label, value in row.items()
            }
            for key, row in frame.iterrows()
        }

    return ComparePayload(
        runs=[CompareRun(ids[label], label) for label in found.labels],
        params=by_id(found.params),
        metrics=by_id(found.metrics),
        param_differs=dict(zip(map(str, found.params.index), found.param_differs, strict=True)),
        metric_differs=dict(zip(map(str, found.metrics.index), found.metric_differs, strict=True)),
        curves={
            metric: {
                ids[label]: Curve(list(steps), [_finite(float(v)) for v in values])
                for label, (steps, values) in per_run.items()
            }
            for metric, per_run in found.curves.items()
        },
    )


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return _finite(value)
    return value.item() if hasattr(value, "item") else value


# --- drift ----------------------------------------------------------------------------------------


def drift_list(settings: Settings) -> DriftList:
    client = client_for(settings)
    experiment = client.get_experiment_by_name(settings.experiment) if client else None
    if client is None or experiment is None:
        return DriftList(settings.experiment, [])
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{records.TAG_DRIFT_REFERENCE}` IS NOT NULL",
        order_by=["attributes.start_time DESC"],
        max_results=200,
    )
    reports = []
    for run in runs:
        for entry in client.list_artifacts(run.info.run_id, DRIFT_FOLDER):
            if entry.path.endswith(".json"):
                reports.append(_drift_info(client, run, entry.path))
    return DriftList(settings.experiment, reports)


def _drift_info(client: MlflowClient, run: Any, path: str) -> DriftReportInfo:
    """One report's row; a damaged summary is a row saying so, not a failed list."""
    stem = path.rsplit("/", 1)[-1][: -len(".json")]
    row = DriftReportInfo(
        run_id=run.info.run_id,
        run_name=run.info.run_name or run.info.run_id[:8],
        report=stem,
        reference=None,
        current=None,
        drifted=None,
        share_drifted=None,
        start_time=run.info.start_time,
    )
    try:
        data = json.loads(_artifact_text(client, run.info.run_id, path))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return replace(
            row,
            reference=_label(data.get("reference")),
            current=_label(data.get("current")),
            drifted=data.get("drifted") if isinstance(data.get("drifted"), bool) else None,
            share_drifted=_number(data.get("share_drifted")),
        )
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        return replace(row, error=f"{path} is damaged ({first}); run %drift again to replace it")


def _label(side: Any) -> str | None:
    label = side.get("label") if isinstance(side, dict) else None
    return label if isinstance(label, str) else None


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return _finite(float(value)) if ok else None


def drift_report(settings: Settings, run_id: str, report: str) -> DriftReport:
    client = client_for(settings)
    _get_run(client, run_id)
    assert client is not None
    # Only names the run really holds are read: the report name never builds a path by itself.
    held = {e.path for e in client.list_artifacts(run_id, DRIFT_FOLDER)}
    path = f"{DRIFT_FOLDER}/{report}.html"
    if path not in held:
        raise MLOpsNotFound(f"run {run_id} has no drift report {report[:80]!r}")
    return DriftReport(run_id, report, _artifact_text(client, run_id, path))


# --- lineage --------------------------------------------------------------------------------------


def lineage(settings: Settings, ref: str) -> dict[str, Any]:
    """``%lineage REF`` as JSON: the nodes and edges from snapshots to gate decisions."""
    from ..lineage.walk import lineage as walk

    if not ref.strip():
        raise MLOpsUsageError("give ref=: a snapshot REF, a run id, NAME/VERSION or NAME@ALIAS")
    if not query.store_exists(settings):
        raise MLOpsNotFound(f"nothing named {ref[:80]!r}: this store has no runs or models yet")
    result: dict[str, Any] = walk(settings, ref).to_json()
    return result
