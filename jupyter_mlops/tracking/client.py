"""Opening the MLflow store named by the settings (mlflow is imported here, on first use).

The client handed out retries calls that find SQLite busy (another process holding a write
transaction) with back-off, and then raises one :class:`~.store.StoreError` naming the store,
instead of SQLAlchemy's ``OperationalError`` after SQLite's own 5 s.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlparse

from .owner import end_orphans
from .spill import folder_for, replay
from .store import ARTIFACTS_DIRNAME, StoreError, ensure_sqlite_store, say

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["ARTIFACTS_DIRNAME", "is_local_store", "mlflow_client", "sqlite_path"]

# Creating a fresh SQLite store logs every alembic migration at INFO; users need none of it.
QUIET_LOGGERS = ("alembic", "alembic.runtime.migration", "mlflow.store.db.utils")
BUSY_BUDGET_S = 30.0  # on top of SQLite's own wait per attempt
BUSY_MARKERS = ("database is locked", "database table is locked", "database is busy")
# MLflow's SQL store sets a tag by reading it and then inserting or updating: two processes that
# set one new tag at once both insert, and the second fails on the primary key. Done again, the
# read finds the row and the call updates it, so for these methods a lost race is waited out too.
UPSERTS = frozenset(
    {"set_tag", "set_model_version_tag", "set_registered_model_tag", "set_experiment_tag"}
)
RACE_MARKERS = ("UNIQUE constraint failed",)


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


def is_busy(exc: BaseException, upsert: bool = False) -> bool:
    text = str(exc)
    markers = BUSY_MARKERS + RACE_MARKERS if upsert else BUSY_MARKERS
    return any(marker in text for marker in markers)


def call_when_free(
    db: Path, call: Callable[..., Any], *args: Any, upsert: bool = False, **kwargs: Any
) -> Any:
    """``call``, retried with back-off while SQLite reports the store busy.

    ``upsert`` calls (tag setters) are also retried when another process inserted the same
    row first.
    """
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if not is_busy(exc, upsert):
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
        wrapped = functools.partial(call_when_free, self._db, attr, upsert=name in UPSERTS)
        setattr(self, name, wrapped)  # found directly from now on
        return wrapped


@contextmanager
def interrupt_afterwards(what: str) -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block is done, then raise it.

    An import cut in half cannot be repeated: MLflow's modules would define their SQLAlchemy
    tables twice ("Table ... is already defined") and numpy's core refuses a second load
    ("cannot load module more than once per process"), so every later cell would fail.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def note(signum: int, frame: Any) -> None:
        if not caught:
            say(f"interrupted: stopping as soon as {what}")
        caught.append(signum)

    try:
        previous = signal.signal(signal.SIGINT, note)
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _import_mlflow() -> None:
    """Import MLflow's client and SQL store whole, even when Ctrl-C arrives meanwhile."""
    if "mlflow.tracking" in sys.modules and "mlflow.store.tracking.sqlalchemy_store" in sys.modules:
        return
    with interrupt_afterwards("MLflow is imported"):
        try:
            import mlflow.store.tracking.sqlalchemy_store
            import mlflow.tracking  # noqa: F401
        except BaseException:  # undone completely, so that a later import starts afresh
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
