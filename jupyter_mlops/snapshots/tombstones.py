"""Removed versions: a tombstone beside the version file, never an edit of it or of a manifest.

``%snapshot rm NAME@vN`` and ``%snapshot gc --keep-last N`` publish
``refs/<name>/v000003.removed.json`` with an exclusive create (atomic: whole or absent). The
version file stays, so its number is never given out again and the history still says what was
there; the tombstone takes the version out of every listing and resolution, and gc then reclaims
the objects and the manifest that no live version uses.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .errors import SnapshotRemoved
from .names import check_name

if TYPE_CHECKING:
    from .store import Backend

REMOVED_SUFFIX = ".removed.json"
VERSION_SUFFIX = ".json"


def removal_key(name: str, version: int) -> str:
    return f"refs/{check_name(name)}/v{version:06d}{REMOVED_SUFFIX}"


def version_number(filename: str) -> tuple[int, bool] | None:
    """(number, is a tombstone) of a file under ``refs/<name>/``; None for anything else."""
    removed = filename.endswith(REMOVED_SUFFIX)
    suffix = REMOVED_SUFFIX if removed else VERSION_SUFFIX
    if not (filename.startswith("v") and filename.endswith(suffix)):
        return None
    digits = filename[1 : -len(suffix)]
    return (int(digits), removed) if digits.isdigit() else None


def read(backend: Backend, name: str, version: int) -> dict[str, Any]:
    """A tombstone's record; what cannot be read is an empty record (the file still counts)."""
    try:
        record = json.loads(backend.read(removal_key(name, version)))
    except (FileNotFoundError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def error(backend: Backend, name: str, version: int, *, last: bool = False) -> SnapshotRemoved:
    record = read(backend, name, version)
    return SnapshotRemoved(
        f"{name}@v{version}",
        str(record.get("by") or "rm"),
        str(record.get("removed") or "an unknown time"),
        last=last,
    )


def refuse_removed(
    backend: Backend, name: str, version: int | None, numbers: list[int], removed: set[int]
) -> None:
    """Raise :class:`SnapshotRemoved` when ``name@v<version>`` (None: the latest) was removed."""
    if version is not None and version in removed:
        raise error(backend, name, version)
    if version is None and numbers and set(numbers) <= removed:
        raise error(backend, name, numbers[-1], last=True)


def refuse_removed_id(backend: Backend, snapshot_id: str) -> None:
    """Raise when the only versions that held ``snapshot_id`` were removed."""
    for key in backend.list("refs"):
        if not key.endswith(REMOVED_SUFFIX):
            continue
        parts = key.split("/")
        parsed = version_number(parts[-1]) if len(parts) == 3 else None
        if parsed is None:
            continue
        name = parts[1]
        if read(backend, name, parsed[0]).get("snapshot") == snapshot_id:
            raise error(backend, name, parsed[0])
