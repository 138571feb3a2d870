"""Reading runs: ``%runs`` as a DataFrame, and the panel's runs page.

The functions take explicit :class:`Settings`; the faces resolve them. Reading never creates a
store: a SQLite store not created yet reads as empty.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from .. import records
from ..config import Settings
from ..errors import MLOpsNotFound, MLOpsUsageError
from .client import mlflow_client, sqlite_path

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

MAX_PAGE = 1000
MAX_ARTIFACTS = 200  # listed per run in its detail
MAX_TOKEN_CHARS = 200
MAX_FILTER_CHARS = 10_000
MAX_FILTER_CLAUSES = 50
RUN_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
BASE_COLUMNS = ["run_id", "name", "status", "start_time"]
SHORT_ATTRIBUTES = {"start_time", "end_time", "status", "run_name", "run_id"}


class RunsFrame(pd.DataFrame):
    """A plain DataFrame that renders as a sortable table; derived frames are plain again."""

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame


def order_by(sort: str) -> str:
    """``metrics.acc DESC``, ``-metrics.acc`` or ``start_time`` in MLflow's order_by syntax."""
    key = sort.strip()
    direction = ""
    if key.startswith("-"):
        key, direction = key[1:].strip(), " DESC"
    head, _, rest = key.partition(" ")
    if rest.strip().upper() not in ("", "ASC", "DESC"):
        raise MLOpsUsageError(f"--sort {sort!r}: write KEY, KEY ASC, KEY DESC or -KEY")
    if head == "name":
        head = "run_name"
    if head in SHORT_ATTRIBUTES:
        head = f"attributes.{head}"
    elif not head.startswith(("metrics.", "params.", "tags.", "attributes.")):
        raise MLOpsUsageError(
            f"--sort {sort!r}: sort by metrics.NAME, params.NAME, tags.NAME, name or start_time"
        )
    return f"{head}{(' ' + rest.strip().upper()) if rest.strip() else direction}"


def frame(runs: list[Any]) -> RunsFrame:
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "run_id": run.info.run_id,
            "name": run.info.run_name,
            "status": run.info.status,
            "start_time": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC"),
        }
        row.update({f"params.{k}": v for k, v in sorted(run.data.params.items())})
        row.update({f"metrics.{k}": v for k, v in sorted(run.data.metrics.items())})
        rows.append(row)
    result = RunsFrame(rows, columns=None if rows else BASE_COLUMNS)
    extra = sorted(c for c in result.columns if c not in BASE_COLUMNS)
    params = [c for c in extra if c.startswith("params.")]
    metrics = [c for c in extra if c.startswith("metrics.")]
    return RunsFrame(result[BASE_COLUMNS + params + metrics])


def search(
    settings: Settings,
    filter: str | None = None,
    sort: str | None = None,
    limit: int = 100,
    include_superseded: bool = False,
    experiment_named: bool = False,
) -> RunsFrame:
    """``%runs``: ``experiment_named`` when the user named the experiment (then it must exist)."""
    from mlflow.exceptions import MlflowException

    if limit < 1:
        raise MLOpsUsageError(f"--limit {limit}: give a positive number of runs")
    experiment = settings.experiment
    client = mlflow_client(settings.tracking_uri)
    found = client.get_experiment_by_name(settings.experiment)
    if found is None:
        if not experiment_named:
            return frame([])
        names = sorted(e.name for e in client.search_experiments(max_results=50))
        raise MLOpsUsageError(
            f"--experiment {experiment!r} does not exist; known: {', '.join(names) or 'none'}"
        )
    clauses = [filter.strip()] if filter and filter.strip() else []
    if not include_superseded:
        clauses.append(f"tags.`{records.TAG_SUPERSEDED_BY}` IS NULL")
    try:
        runs = client.search_runs(
            [found.experiment_id],
            filter_string=" and ".join(clauses),
            order_by=[order_by(sort)] if sort else ["attributes.start_time DESC"],
            max_results=limit,
        )
    except MlflowException as exc:
        if exc.error_code != "INVALID_PARAMETER_VALUE":
            raise
        message = str(exc.message).splitlines()[0]
        raise MLOpsUsageError(
            f"MLflow could not use the filter or sort ({message}); filters look like "
            "\"metrics.acc > 0.9 and params.lr = '0.1'\""
        ) from None
    return frame(list(runs))


# --- the panel's runs page ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPage:
    """One page of an experiment's live runs (MLflow ``Run`` entities), newest first by default."""

    experiment: str
    runs: list[Any]
    next_page_token: str | None


def store_exists(settings: Settings) -> bool:
    """False for a SQLite store not created yet (opening it would create and migrate it)."""
    db = sqlite_path(settings.tracking_uri)
    return db is None or db.exists()


def existing_client(settings: Settings) -> MlflowClient | None:
    """A client of the configured store, or None when it does not exist yet (nothing created)."""
    return mlflow_client(settings.tracking_uri) if store_exists(settings) else None


def check_run_id(run_id: str) -> str:
    if not 1 <= len(run_id) <= 64 or not set(run_id) <= RUN_ID_CHARS:
        raise MLOpsUsageError(f"invalid run id {run_id[:80]!r}: use the id shown in the runs table")
    return run_id


def get_run(client: MlflowClient | None, run_id: str) -> Any:
    """The run ``run_id``, or :class:`MLOpsNotFound` saying the store lacks it."""
    from mlflow.exceptions import MlflowException

    check_run_id(run_id)
    if client is None:
        raise MLOpsNotFound(f"no run {run_id!r}: this store has no runs yet")
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise MLOpsNotFound(f"no run {run_id!r} in this store") from None


def page(
    settings: Settings,
    limit: int = 100,
    page_token: str | None = None,
    sort: str | None = None,
    filter: str | None = None,
) -> RunPage:
    """The runs of ``settings.experiment`` not superseded by a re-run, one page at a time."""
    from mlflow.exceptions import MlflowException

    if not 1 <= limit <= MAX_PAGE:
        raise MLOpsUsageError(f"limit={limit}: give a number of runs between 1 and {MAX_PAGE}")
    client = existing_client(settings)
    experiment = client.get_experiment_by_name(settings.experiment) if client else None
    if client is None or experiment is None:
        return RunPage(settings.experiment, [], None)
    clauses = [f"tags.`{records.TAG_SUPERSEDED_BY}` IS NULL"]
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
    return RunPage(settings.experiment, list(found), _token_text(found.token))


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


# --- one run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """Everything one run recorded, as the panel's run detail shows it."""

    run: Any  # the MLflow Run
    experiment: str
    artifacts: list[str]  # at most MAX_ARTIFACTS paths, sorted
    cell_source: str | None  # the cell as written (records.CELL_ARTIFACT)
    histories: dict[str, list[Any]]  # metric -> its MLflow Metric points, as logged

    @property
    def tags(self) -> dict[str, str]:
        hidden = records.HIDDEN_RUN_TAGS
        return {k: v for k, v in sorted(self.run.data.tags.items()) if k not in hidden}


def artifact_paths(client: MlflowClient, run_id: str, limit: int = MAX_ARTIFACTS) -> list[str]:
    """The run's artifact files (folders walked breadth first), at most ``limit``, sorted."""
    paths: list[str] = []
    folders: list[str | None] = [None]
    while folders and len(paths) < limit:
        for entry in client.list_artifacts(run_id, folders.pop(0)):
            if entry.is_dir:
                folders.append(entry.path)
            else:
                paths.append(entry.path)
    return sorted(paths[:limit])


def run_record(settings: Settings, run_id: str) -> RunRecord:
    """The run ``run_id``: its experiment's name, artifacts, cell source, metric histories."""
    from .artifacts import artifact_text

    client = existing_client(settings)
    run = get_run(client, run_id)
    assert client is not None
    artifacts = artifact_paths(client, run_id)
    has_cell = records.CELL_ARTIFACT in artifacts
    return RunRecord(
        run=run,
        experiment=client.get_experiment(run.info.experiment_id).name,
        artifacts=artifacts,
        cell_source=artifact_text(client, run, records.CELL_ARTIFACT) if has_cell else None,
        histories={key: client.get_metric_history(run_id, key) for key in sorted(run.data.metrics)},
    )
