"""One promotion per alias at a time: an ``O_EXCL`` lock file under ``<home>/locks/``.

The lock serialises promotions of one store; the caller still re-reads the alias under the lock
(compare-and-set), which also catches a move made from elsewhere (the MLflow UI, another store
folder on the same server). A lock left by a dead process on this host is taken over.
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
UNWRITTEN_GRACE_S = 10.0  # a lock file still empty after this was left by a crash


def lock_path(home: Path, name: str, alias: str) -> Path:
    return home / LOCKS_DIRNAME / f"{slug(name)}@{slug(alias)}.lock"


def _owner(path: Path) -> dict[str, object] | None:
    try:
        loaded: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
        return loaded
    except (OSError, ValueError):
        return None


def _is_stale(path: Path) -> bool:
    owner = _owner(path)
    if owner is None:
        try:
            return time.time() - path.stat().st_mtime > UNWRITTEN_GRACE_S
        except OSError:
            return False
    if owner.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(owner.get("pid", 0)), 0)  # type: ignore[call-overload]
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, TypeError):
        return False
    return False


@contextmanager
def alias_lock(
    home: Path, name: str, alias: str, user: str, timeout: float = 60.0
) -> Iterator[Path]:
    path = lock_path(home, name, alias)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _is_stale(path):
                path.unlink(missing_ok=True)
                continue
            if time.monotonic() > deadline:
                owner = _owner(path) or {}
                raise MLOpsError(
                    f"{name}@{alias} is being promoted by {owner.get('user', '?')} "
                    f"(pid {owner.get('pid', '?')} on {owner.get('host', '?')}) since "
                    f"{owner.get('since', '?')}; wait, or remove {path} if that process is gone"
                ) from None
            time.sleep(POLL_S)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "user": user,
                    "since": datetime.now(UTC).isoformat(timespec="seconds"),
                },
                fh,
            )
        break
    try:
        yield path
    finally:
        mine = _owner(path)
        if mine is not None and mine.get("pid") == os.getpid():
            path.unlink(missing_ok=True)
