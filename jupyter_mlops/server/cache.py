"""Answers of read routes over a SQLite store, reused until the store changes.

Twenty panels refreshing ``GET runs`` of one store asked MLflow the same question twenty times
over, each time building the same page of ORM objects under the GIL (p95 4.8 s). An answer is
kept as its JSON text, keyed by the store, the route and its parameters, and stamped with the
database's identity and SQLite's ``PRAGMA data_version``, which changes with every commit made by
any other connection, whatever process made it. A request that finds its answer's stamp current
costs one stat and one pragma. Concurrent misses of one key compute it once (striped locks).
Remote stores are not cached: nothing says when they change.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path

from ..config import Settings
from ..tracking.client import sqlite_path

MAX_ANSWERS = 256
MAX_PROBES = 32  # open SQLite connections, one per store
STRIPES = 32

Stamp = tuple[int, int, int, int]

_lock = threading.Lock()
_probes: dict[Path, tuple[int, sqlite3.Connection]] = {}
_answers: OrderedDict[tuple[Hashable, ...], tuple[Stamp, str]] = OrderedDict()
_stripes = [threading.Lock() for _ in range(STRIPES)]


def stamp(db: Path) -> Stamp | None:
    """(inode, data_version, mtime, size) of the database; None when there is no file."""
    try:
        info = db.stat()
    except FileNotFoundError:
        return None
    with _lock:
        inode, probe = _probes.get(db, (-1, None))
        if probe is None or inode != info.st_ino:  # new, or replaced by a rename: reopen
            if probe is not None:
                probe.close()
            probe = sqlite3.connect(db, check_same_thread=False)
            _probes.pop(db, None)
            _probes[db] = (info.st_ino, probe)
            while len(_probes) > MAX_PROBES:  # the least recently opened store's goes first
                _probes.pop(next(iter(_probes)))[1].close()
        version = int(probe.execute("PRAGMA data_version").fetchone()[0])
    return info.st_ino, version, info.st_mtime_ns, info.st_size


def answer(settings: Settings, key: tuple[Hashable, ...], compute: Callable[[], str]) -> str:
    """``compute()``'s JSON text for ``key``, reused while the store's database is unchanged."""
    db = sqlite_path(settings.tracking_uri)
    if db is None:
        return compute()
    full = (settings.tracking_uri, *key)
    with _stripes[hash(full) % STRIPES]:
        before = stamp(db)  # taken before computing: a commit meanwhile makes the next one stale
        if before is None:
            return compute()
        with _lock:
            held = _answers.get(full)
            if held is not None and held[0] == before:
                _answers.move_to_end(full)
                return held[1]
        text = compute()
        with _lock:
            _answers[full] = (before, text)
            _answers.move_to_end(full)
            while len(_answers) > MAX_ANSWERS:
                _answers.popitem(last=False)
        return text
