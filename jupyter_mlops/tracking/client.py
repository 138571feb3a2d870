"""Opening the MLflow store named by the settings (mlflow is imported here, on first use)."""

from __future__ import annotations

import logging
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# Creating a fresh SQLite store logs every alembic migration at INFO; users need none of it.
QUIET_LOGGERS = ("alembic", "alembic.runtime.migration", "mlflow.store.db.utils")


@cache
def mlflow_client(tracking_uri: str) -> MlflowClient:
    """One client per tracking URI and process; the first call creates a new SQLite store."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.search_experiments(max_results=1)  # opens (and on first use migrates) the store
    return client
