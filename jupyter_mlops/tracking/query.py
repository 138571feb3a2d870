"""``%runs``: an experiment's runs as a DataFrame (run_id, name, status, params.*, metrics.*)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..context import current_settings
from ..errors import MLOpsUsageError
from .client import mlflow_client
from .run import TAG_SUPERSEDED

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
    experiment: str | None = None,
    filter: str | None = None,
    sort: str | None = None,
    limit: int = 100,
    include_superseded: bool = False,
) -> RunsFrame:
    from mlflow.exceptions import MlflowException

    if limit < 1:
        raise MLOpsUsageError(f"--limit {limit}: give a positive number of runs")
    settings = current_settings({"experiment": experiment})
    client = mlflow_client(settings.tracking_uri)
    found = client.get_experiment_by_name(settings.experiment)
    if found is None:
        if experiment is None:
            return frame([])
        names = sorted(e.name for e in client.search_experiments(max_results=50))
        raise MLOpsUsageError(
            f"--experiment {experiment!r} does not exist; known: {', '.join(names) or 'none'}"
        )
    clauses = [filter.strip()] if filter and filter.strip() else []
    if not include_superseded:
        clauses.append(f"tags.`{TAG_SUPERSEDED}` IS NULL")
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
