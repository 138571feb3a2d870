"""A SQLite MLflow store that is created once, completely, whoever asks for it first.

MLflow creates a missing SQLite store by running its whole alembic migration chain in place:
slow (a second or more of Python), and two processes doing it at once leave a half-migrated file
that every later run trips over. Here a new store is built aside, under a lock beside the
database, and moved into place in one rename, so no process ever opens a half-made store:

- the schema is MLflow's own: its migrations run once per MLflow schema revision into a template
  in the user's cache folder, and every new store starts as a copy of that template (the slow
  chain is paid once per machine and MLflow version, not once per store);
- a database whose schema revision is not MLflow's current one is repaired under the same lock:
  one that holds no run is set aside and rebuilt; one with runs is backed up and upgraded with
  MLflow's migrations, and if that fails the error names the file and what to do.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import MLOpsError

ARTIFACTS_DIRNAME = "artifacts"
LOCK_TIMEOUT_S = 300.0  # another process creating or upgrading the store
CACHE_ENV = "XDG_CACHE_HOME"


class StoreError(MLOpsError):
    """The MLflow store cannot be opened as it is (damaged, locked, or from another MLflow)."""


def say(message: str) -> None:
    """One status line on stderr for what takes a moment and would otherwise look like a hang."""
    print(f"jupyter-mlops: {message}", file=sys.stderr, flush=True)


@contextmanager
def file_lock(path: Path, what: str) -> Iterator[None]:
    """An OS lock on ``path`` (released if its holder dies); says so when it has to wait."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"waiting for another process that is {what} ({path})")
        try:
            lock.acquire(timeout=LOCK_TIMEOUT_S)
        except Timeout:
            raise StoreError(
                f"another process has been {what} for {LOCK_TIMEOUT_S:.0f} s ({path} is "
                "locked); wait for it to finish, or end it and run again"
            ) from None
    try:
        yield
    finally:
        lock.release()


def schema_revision(db: Path) -> str | None:
    """The alembic revision recorded in ``db`` (None: no MLflow schema at all)."""
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=30) as con:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:  # no such table, or not a database
        return None
    return str(row[0]) if row else None


def count_runs(db: Path) -> int:
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=30) as con:
            return int(con.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0


def head_revision() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return str(_get_latest_schema_revision())


def _migrate(db: Path) -> None:
    """MLflow's own migrations, from nothing (or from ``db``'s revision) to its head."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables, _upgrade_db

    fresh = schema_revision(db) is None
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    try:
        if fresh:
            _initialize_tables(engine)
        else:
            _upgrade_db(engine)
    finally:
        engine.dispose()


def cache_folder() -> Path:
    base = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache")
    return Path(base) / "jupyter-mlops"


def schema_template(head: str) -> Path:
    """A store with MLflow's schema at ``head`` and nothing else, made once per machine."""
    template = cache_folder() / f"mlflow-schema-{head}.db"
    if schema_revision(template) == head:
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(template.with_suffix(".lock"), "creating MLflow's schema"):
        if schema_revision(template) != head:
            _build_aside(template, _migrate, head)
    return template


def _build_aside(target: Path, build: Callable[[Path], None], head: str) -> None:
    """Run ``build(tmp)`` on a file beside ``target``, check it, then rename it into place."""
    # A new name for every attempt: MLflow caches one engine per URI, and the engine of an
    # attempt cut short by a Ctrl-C would still point at that attempt's deleted file.
    tmp = target.with_name(f"{target.name}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        build(tmp)
        found = schema_revision(tmp)
        if found != head:
            raise StoreError(
                f"building the MLflow store {target} ended at schema revision {found}, not "
                f"MLflow's {head}; delete {tmp.parent / (target.name + '*')} and run again"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _new_store(db: Path, head: str) -> None:
    """A copy of the schema template with the Default experiment's artifacts beside ``db``."""
    try:
        template: Path | None = schema_template(head)
    except OSError:  # no writable cache folder: migrate this store itself
        template = None

    def build(tmp: Path) -> None:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        if template is not None:
            shutil.copyfile(template, tmp)
        else:
            _migrate(tmp)
        root = (db.parent / ARTIFACTS_DIRNAME).as_uri()
        SqlAlchemyStore(f"sqlite:///{tmp}", root).engine.dispose()

    _build_aside(db, build, head)


def ensure_sqlite_store(db: Path) -> None:
    """Make ``db`` a complete MLflow store at MLflow's current schema; safe across processes."""
    if db.exists() and schema_revision(db) == head_revision():
        return
    head = head_revision()
    db.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(db.with_name(db.name + ".lock"), "creating the MLflow store"):
        if not db.exists():
            started = time.monotonic()
            say(f"creating the MLflow store at {db}")
            _new_store(db, head)
            if time.monotonic() - started > 1:
                say(f"store ready ({time.monotonic() - started:.1f} s)")
            return
        found = schema_revision(db)
        if found == head:
            return  # another process finished it while we waited
        _repair(db, found, head)


def _repair(db: Path, found: str | None, head: str) -> None:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs = count_runs(db)
    if runs == 0:
        aside = db.with_name(f"{db.name}.incomplete-{stamp}")
        say(
            f"the MLflow store {db} was left half-created (schema revision {found}, no runs); "
            f"moved it to {aside.name} and creating it again"
        )
        os.replace(db, aside)
        _new_store(db, head)
        return
    backup = db.with_name(f"{db.name}.backup-{found}-{stamp}")
    say(
        f"the MLflow store {db} has schema revision {found}, MLflow needs {head}; "
        f"upgrading it with MLflow's migrations (backup: {backup.name})"
    )
    shutil.copyfile(db, backup)
    try:
        _migrate(db)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(
            f"the MLflow store {db} (schema revision {found}, {runs} runs) could not be "
            f"upgraded to MLflow's {head} ({first}); restore {backup.name} and run "
            f"`mlflow db upgrade sqlite:///{db}`, or move the file away to start a new store"
        ) from None
    if schema_revision(db) != head:
        raise StoreError(
            f"the MLflow store {db} is still not at MLflow's schema {head} after upgrading; "
            f"restore {backup.name}, or move the file away to start a new store"
        )
