"""One promotion per alias at a time: an ``flock`` on a file under ``<home>/locks/``.

The lock serialises promotions of one store; the caller still re-reads the alias under the lock
(compare-and-set), which also catches a move made from elsewhere (the MLflow UI, another store
folder on the same server).

The kernel drops an ``flock`` when its process dies, however it dies, so a dead owner's lock is
free at once and there is no takeover step that two waiters could both win. The file itself
stays (removing it would let a waiter lock the removed file while another locks a new one); it
holds the owner's pid, host and user while the lock is held, for the message of a waiter that
gives up.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ..errors import MLOpsError
from .decisions import slug

LOCKS_DIRNAME = "locks"
POLL_S = 0.05


def lock_path(home: Path, name: str, alias: str) -> Path:
    return home / LOCKS_DIRNAME / f"{slug(name)}@{slug(alias)}.lock"


def _owner(path: Path) -> dict[str, object]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


@contextmanager
def alias_lock(
    home: Path, name: str, alias: str, user: str, timeout: float = 60.0
) -> Iterator[Path]:
    import fcntl

    path = lock_path(home, name, alias)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    owner = _owner(path)
                    raise MLOpsError(
                        f"{name}@{alias} is being promoted by {owner.get('user', '?')} "
                        f"(pid {owner.get('pid', '?')} on {owner.get('host', '?')}) since "
                        f"{owner.get('since', '?')}; wait for it to finish and try again"
                    ) from None
                time.sleep(POLL_S)
        stamp = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "user": user,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(stamp).encode("utf-8"), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # nobody holds it now; the unlock comes with the close
    finally:
        os.close(fd)
