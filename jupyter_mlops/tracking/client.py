"""Opening the MLflow store named by the settings (mlflow is imported here, on first use)."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# Creating a fresh SQLite store logs every alembic migration at INFO; users need none of it.
QUIET_LOGGERS = ("alembic", "alembic.runtime.migration", "mlflow.store.db.utils")
ARTIFACTS_DIRNAME = "artifacts"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for any other store)."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite" or not parsed.path or parsed.path == "/:memory:":
        return None
    # sqlite:////abs/file.db is absolute, sqlite:///file.db relative to the cwd (SQLAlchemy's rule).
    return Path(unquote(parsed.path[1:])).absolute()


def is_local_store(tracking_uri: str) -> bool:
    """Artifacts of SQLite and file stores land on this machine, by default under ./mlruns."""
    return urlparse(tracking_uri).scheme in ("", "file", "sqlite")


def _create_sqlite_store(db: Path) -> None:
    """Create the tables ourselves, so the Default experiment's artifacts go beside the DB.

    MlflowClient would put them under ``<cwd>/mlruns``, wherever the kernel happens to run.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    db.parent.mkdir(parents=True, exist_ok=True)
    root = db.parent / ARTIFACTS_DIRNAME
    SqlAlchemyStore(f"sqlite:///{db}", root.as_uri()).engine.dispose()


@cache
def mlflow_client(tracking_uri: str) -> MlflowClient:
    """One client per tracking URI and process; the first call creates a new SQLite store."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient

    db = sqlite_path(tracking_uri)
    if db is not None and not db.exists():
        _create_sqlite_store(db)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.search_experiments(max_results=1)  # opens (and on first use migrates) the store
    return client
