"""Read-side glue of the REST API: the capability cores' data as typed payloads.

Every function takes explicit :class:`Settings` (resolved for the notebook's folder, never the
server's cwd) and never creates a store: browsing an empty folder answers with empty lists.
Unknown names raise :class:`NotFound`; malformed input raises ``MLOpsUsageError``.
"""

from __future__ import annotations

import base64
import json
import math
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings, is_url
from ..errors import MLOpsNotFound, MLOpsUsageError
from ..registry.decisions import REPORTS_DIRNAME
from ..registry.models import run_snapshots
from ..tracking.client import mlflow_client, sqlite_path
from ..tracking.query import order_by
from ..tracking.run import CELL_ARTIFACT, TAG_SUPERSEDED
from .models import (
    ColumnInfo,
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

MAX_PAGE = 1000
MAX_CURVE_POINTS = 500
MAX_ARTIFACTS = 200
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TOKEN_CHARS = 200
MAX_FILTER_CHARS = 10_000
MAX_FILTER_CLAUSES = 50
MAX_MODEL_NAME_CHARS = 256
DRIFT_FOLDER = "drift"
DRIFT_TAG = "mlops.drift."


class NotFound(MLOpsNotFound):
    """The request names a run, snapshot, model or report this store does not hold (404)."""


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def tracking_store_exists(settings: Settings) -> bool:
    """False for a SQLite store not created yet (opening it would create and migrate it)."""
    db = sqlite_path(settings.tracking_uri)
    return db is None or db.exists()


def client_for(settings: Settings) -> MlflowClient | None:
    return mlflow_client(settings.tracking_uri) if tracking_store_exists(settings) else None


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id):
        raise MLOpsUsageError(f"invalid run id {run_id[:80]!r}: use the id shown in the runs table")
    return run_id


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
    from mlflow.exceptions import MlflowException

    if not 1 <= limit <= MAX_PAGE:
        raise MLOpsUsageError(f"limit={limit}: give a number of runs between 1 and {MAX_PAGE}")
    empty = RunsPage(settings.experiment, [], None, [], [])
    client = client_for(settings)
    experiment = client.get_experiment_by_name(settings.experiment) if client else None
    if client is None or experiment is None:
        return empty
    clauses = [f"tags.`{TAG_SUPERSEDED}` IS NULL"]
    if filter and filter.strip():
        clauses.insert(0, check_filter(filter.strip()))
    if page_token:
        check_page_token(page_token, sqlite_path(settings.tracking_uri) is not None)
    try:
        found = client.search_runs(
            [experiment.experiment_id],
            filter_string=" and ".join(clauses),
            order_by=[order_by(sort)] if sort else ["attributes.start_time DESC"],
            max_results=limit,
            page_token=page_token or None,
        )
    except MlflowException as exc:
        if exc.error_code != "INVALID_PARAMETER_VALUE":
            raise
        raise MLOpsUsageError(str(exc.message).splitlines()[0]) from None
    runs = [summary(run) for run in found]
    return RunsPage(
        experiment=settings.experiment,
        runs=runs,
        next_page_token=_token_text(found.token),
        metric_keys=sorted({k for r in runs for k in r.metrics}),
        param_keys=sorted({k for r in runs for k in r.params}),
    )


def check_filter(text: str) -> str:
    """A filter MLflow can parse, of a size its SQL store can run (SQLite joins 200 tables)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.search_utils import SearchUtils

    if len(text) > MAX_FILTER_CHARS:
        raise MLOpsUsageError(
            f"filter is {len(text):,} characters long; keep it under {MAX_FILTER_CHARS:,}"
        )
    try:
        clauses = SearchUtils.parse_search_filter(text)
    except MlflowException as exc:
        raise MLOpsUsageError(str(exc.message).splitlines()[0]) from None
    if len(clauses) > MAX_FILTER_CLAUSES:
        raise MLOpsUsageError(
            f"filter has {len(clauses)} clauses; combine at most {MAX_FILTER_CLAUSES} with 'and'"
        )
    return text


def check_page_token(token: str, sql_store: bool) -> None:
    """A token as a SQL store hands out (base64 of ``{"offset": N}``); others: bounded length."""
    problem = MLOpsUsageError(
        f"page_token {token[:40]!r}{'...' if len(token) > 40 else ''} is not a token this store "
        "handed out; pass the next_page_token of the previous page, or leave it out"
    )
    if len(token) > MAX_TOKEN_CHARS:
        raise problem
    if not sql_store:
        return
    try:
        offset = json.loads(base64.b64decode(token, validate=True)).get("offset")
    except (ValueError, TypeError, AttributeError):
        raise problem from None
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 2**62:
        raise problem


def _token_text(token: str | bytes | None) -> str | None:
    """MLflow's SQL store hands out bytes tokens and accepts them back as text."""
    if not token:
        return None
    return token.decode("ascii") if isinstance(token, bytes) else token


def _get_run(client: MlflowClient | None, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    check_run_id(run_id)
    if client is None:
        raise NotFound(f"no run {run_id!r}: this store has no runs yet")
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise NotFound(f"no run {run_id!r} in this store") from None


def _thin(history: list[Any]) -> Curve:
    points = sorted(history, key=lambda m: (m.step, m.timestamp))
    stride = max(1, math.ceil(len(points) / MAX_CURVE_POINTS))
    kept = points[::stride]
    if points and kept[-1] is not points[-1]:
        kept.append(points[-1])
    return Curve([m.step for m in kept], [_finite(m.value) for m in kept])


def _artifacts(client: MlflowClient, run_id: str) -> list[str]:
    paths: list[str] = []
    folders: list[str | None] = [None]
    while folders and len(paths) < MAX_ARTIFACTS:
        for entry in client.list_artifacts(run_id, folders.pop(0)):
            if entry.is_dir:
                folders.append(entry.path)
            else:
                paths.append(entry.path)
    return sorted(paths[:MAX_ARTIFACTS])


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
    client = client_for(settings)
    run = _get_run(client, run_id)
    assert client is not None
    artifacts = _artifacts(client, run_id)
    experiment = client.get_experiment(run.info.experiment_id).name
    tags = {k: v for k, v in sorted(run.data.tags.items()) if k != "mlflow.log-model.history"}
    return RunDetail(
        run=summary(run),
        experiment=experiment,
        tags=tags,
        inputs=run_snapshots(run)[0],
        artifacts=artifacts,
        cell_source=(
            _artifact_text(client, run_id, CELL_ARTIFACT) if CELL_ARTIFACT in artifacts else None
        ),
        notebook=tags.get("mlops.notebook"),
        cell_id=tags.get("mlops.cell_id"),
        curves={
            key: _thin(client.get_metric_history(run_id, key)) for key in sorted(run.data.metrics)
        },
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

    check_name(name)
    store = _open_snapshots(settings)
    numbers = store.versions(name) if store is not None else []
    if store is None or not numbers:
        raise NotFound(f"no snapshot named {name!r} in this store")
    chosen = numbers[-1] if version is None else version
    for wanted in (chosen, against):
        if wanted is not None and wanted not in numbers:
            raise NotFound(f"{name} has no version v{wanted}; it has v{numbers[0]}..v{numbers[-1]}")
    resolved = store.resolve(f"{name}@v{chosen}")
    manifest = store.manifest(resolved.id, resolved.ref)
    schema = [
        ColumnInfo(
            name=str(c.get("label", c["name"])),
            type=str(c.get("pandas_dtype") or c.get("arrow_type") or ""),
            index=bool(c.get("index")),
            bytes=int(c.get("bytes", 0)),
            stats=c.get("stats") or {},
        )
        for c in manifest.get("columns", [])
    ]
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


def model_versions(client: MlflowClient, name: str) -> list[Any]:
    """Every version of model ``name``, whatever quotes the name holds (MLflow has no escape)."""
    if "'" not in name or '"' not in name:
        quote = '"' if "'" in name else "'"
        return list(client.search_model_versions(f"name = {quote}{name}{quote}"))
    return [v for v in client.search_model_versions(max_results=10_000) if v.name == name]


def model_list(settings: Settings) -> ModelList:
    """Every registered model; one that cannot be read is a row saying why, not a failed list."""
    from mlflow.exceptions import MlflowException

    client = client_for(settings)
    if client is None:
        return ModelList([])
    models = []
    for model in client.search_registered_models(max_results=1000):
        aliases = {a: int(v) for a, v in sorted(model.aliases.items()) if str(v).isdigit()}
        try:
            numbers = [int(v.version) for v in model_versions(client, model.name)]
        except (MlflowException, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            error = f"its versions cannot be read: {first}; check it with the MLflow UI"
            models.append(ModelSummary(model.name, None, 0, aliases, error))
            continue
        models.append(
            ModelSummary(
                name=model.name,
                latest_version=max(numbers) if numbers else None,
                versions=len(numbers),
                aliases=aliases,
            )
        )
    return ModelList(sorted(models, key=lambda m: m.name.lower()))


def check_model_name(name: str) -> str:
    """Any name MLflow could hold (plain MLflow allows quotes); '/' and '@' separate refs."""
    if (
        not name.strip()
        or len(name) > MAX_MODEL_NAME_CHARS
        or any(c in name for c in "/@")
        or not name.isprintable()
    ):
        raise MLOpsUsageError(
            f"model name {name[:80]!r} is not valid: give a registered model's name "
            "('/' and '@' separate versions and aliases)"
        )
    return name


def get_registered(client: MlflowClient | None, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    check_model_name(name)
    if client is None:
        raise NotFound(f"no registered model {name!r}: this store has no models yet")
    try:
        return client.get_registered_model(name)
    except MlflowException:
        raise NotFound(f"no registered model {name!r} in this store") from None


def gate_history(home: Path, model: str) -> dict[int, list[dict[str, Any]]]:
    """Every recorded decision on ``model``'s versions (from ``<home>/reports/``), newest first."""
    folder = home / REPORTS_DIRNAME
    found: dict[int, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("gate-*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if record.get("model") == model and isinstance(record.get("version"), int):
            found.setdefault(record["version"], []).append(record)
    for records in found.values():
        records.sort(key=lambda r: str(r.get("at", "")), reverse=True)
    return found


def model_detail(settings: Settings, name: str) -> ModelDetail:
    client = client_for(settings)
    registered = get_registered(client, name)
    assert client is not None
    aliases = {a: int(v) for a, v in sorted(registered.aliases.items())}
    history = gate_history(settings.home, name)
    versions = []
    for mv in sorted(model_versions(client, registered.name), key=lambda v: -int(v.version)):
        number = int(mv.version)
        run = None
        if mv.run_id:
            try:
                run = client.get_run(mv.run_id)
            except Exception:  # a deleted run leaves the version readable
                run = None
        versions.append(
            ModelVersionInfo(
                version=number,
                run_id=mv.run_id or None,
                run_name=run.info.run_name if run is not None else None,
                created=mv.creation_timestamp,
                aliases=sorted(a for a, v in aliases.items() if v == number),
                snapshots=run_snapshots(run)[0] if run is not None else [],
                metrics=(
                    {k: _finite(v) for k, v in sorted(run.data.metrics.items())}
                    if run is not None
                    else {}
                ),
                gates=history.get(number, []),
            )
        )
    return ModelDetail(registered.name, aliases, versions)


# --- drift ----------------------------------------------------------------------------------------


def drift_list(settings: Settings) -> DriftList:
    client = client_for(settings)
    experiment = client.get_experiment_by_name(settings.experiment) if client else None
    if client is None or experiment is None:
        return DriftList(settings.experiment, [])
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{DRIFT_TAG}reference` IS NOT NULL",
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
        raise NotFound(f"run {run_id} has no drift report {report[:80]!r}")
    return DriftReport(run_id, report, _artifact_text(client, run_id, path))


# --- lineage --------------------------------------------------------------------------------------


def lineage(settings: Settings, ref: str) -> dict[str, Any]:
    """``%lineage REF`` as JSON: the nodes and edges from snapshots to gate decisions."""
    from ..lineage.walk import lineage as walk

    if not ref.strip():
        raise MLOpsUsageError("give ref=: a snapshot REF, a run id, NAME/VERSION or NAME@ALIAS")
    if not tracking_store_exists(settings):
        raise NotFound(f"nothing named {ref[:80]!r}: this store has no runs or models yet")
    result: dict[str, Any] = walk(settings, ref).to_json()
    return result
