"""Opening the MLflow store named by the settings (mlflow is imported here, on first use).

The client handed out retries calls that find SQLite busy (another process holding a write
transaction) with back-off, and then raises one :class:`~.store.StoreError` naming the store,
instead of SQLAlchemy's ``OperationalError`` after SQLite's own 5 s.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlparse

from .owner import end_orphans
from .spill import folder_for, replay
from .store import ARTIFACTS_DIRNAME, StoreError, ensure_sqlite_store

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["ARTIFACTS_DIRNAME", "is_local_store", "mlflow_client", "sqlite_path"]

# Creating a fresh SQLite store logs every alembic migration at INFO; users need none of it.
QUIET_LOGGERS = ("alembic", "alembic.runtime.migration", "mlflow.store.db.utils")
BUSY_BUDGET_S = 30.0  # on top of SQLite's own wait per attempt
BUSY_MARKERS = ("database is locked", "database table is locked", "database is busy")


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


def is_busy(exc: BaseException) -> bool:
    text = str(exc)
    return any(marker in text for marker in BUSY_MARKERS)


def call_when_free(db: Path, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call``, retried with back-off while SQLite reports the store busy."""
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if not is_busy(exc):
                raise
            waited = time.monotonic() - started
            if waited >= BUSY_BUDGET_S:
                raise StoreError(
                    f"the MLflow store {db} stayed locked by another process for {waited:.0f} s "
                    f"({attempts} attempts); let the other writer (a kernel, `mlflow ui`, a "
                    "sqlite shell) finish or close it, then run again"
                ) from None
            time.sleep(min(0.1 * 2 ** (attempts - 1), 2.0, BUSY_BUDGET_S - waited))


class BusyRetryingClient:
    """An ``MlflowClient`` whose public methods wait out a busy SQLite store."""

    def __init__(self, client: MlflowClient, db: Path) -> None:
        self._client = client
        self._db = db

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr
        wrapped = functools.partial(call_when_free, self._db, attr)
        setattr(self, name, wrapped)  # found directly from now on
        return wrapped


def _import_mlflow() -> None:
    """Import MLflow's client and SQL store; an interrupted import is undone completely.

    A KeyboardInterrupt during the first import leaves half of MLflow's modules behind, and the
    next import defines its SQLAlchemy tables a second time ("Table ... is already defined").
    """
    try:
        import mlflow.store.tracking.sqlalchemy_store
        import mlflow.tracking  # noqa: F401
    except BaseException:
        for name in [n for n in sys.modules if n == "mlflow" or n.startswith("mlflow.")]:
            del sys.modules[name]
        raise


def registry_uri_for(tracking_uri: str) -> str:
    """The model registry beside a tracking store: MLFLOW_REGISTRY_URI when set, else the same."""
    return os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri


@cache
def mlflow_client(tracking_uri: str) -> MlflowClient:
    """One client per tracking URI and process; the first call creates a new SQLite store.

    Metric values a terminated kernel kept on disk are written into their runs, and runs left
    RUNNING by processes of this host that have since died are marked KILLED.
    """
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    _import_mlflow()
    from mlflow.tracking import MlflowClient

    db = sqlite_path(tracking_uri)
    if db is not None:
        ensure_sqlite_store(db)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri_for(tracking_uri))
    if db is not None:
        client = cast("MlflowClient", BusyRetryingClient(client, db))
    replay(client, folder_for(db))  # values a terminated kernel left on disk
    end_orphans(client)  # also opens the store: a bad URI fails here, not mid-run
    return client
