"""Files and folders: one object per file (BLAKE3 of its bytes), with a stat cache.

The stat cache maps (path, device, inode, size, mtime, ctime) to the file's id, like DVC's state
database, so re-snapshotting an unchanged large file costs a ``stat``, not a re-hash. It is a
small SQLite file in the local ``home`` (also for remote stores): only a cache, safe to delete.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from blake3 import blake3

from ..errors import MLOpsUsageError
from .errors import SnapshotCorrupted
from .hashing import PATH_FORMAT, digest_file
from .repository import object_key
from .store import Backend

COPY_BLOCK = 8 << 20


class StatCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS stat (path TEXT PRIMARY KEY, key TEXT, id TEXT)"
        )

    @staticmethod
    def _key(st: os.stat_result) -> str:
        return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"

    def file_id(self, path: Path, st: os.stat_result) -> str:
        key = self._key(st)
        row = self.db.execute("SELECT key, id FROM stat WHERE path = ?", (str(path),)).fetchone()
        if row and row[0] == key:
            return str(row[1])
        file_id = digest_file(str(path))
        self.db.execute(
            "INSERT OR REPLACE INTO stat (path, key, id) VALUES (?, ?, ?)",
            (str(path), key, file_id),
        )
        return file_id

    def close(self) -> None:
        self.db.close()


def walk(root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Regular files under ``root`` (relative POSIX path, path, stat), in a stable order."""
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder, name)
            st = path.stat()
            if stat.S_ISREG(st.st_mode):
                yield path.relative_to(root).as_posix(), path, st


def describe_path(path: Path, cache: StatCache) -> tuple[dict[str, Any], dict[str, Path]]:
    """The identity content of a file or folder snapshot, and where each object's bytes are."""
    path = path.resolve()
    if path.is_file():
        st = path.stat()
        object_id = cache.file_id(path, st)
        content = {
            "format": PATH_FORMAT,
            "kind": "file",
            "name": path.name,
            "size": st.st_size,
            "mode": stat.S_IMODE(st.st_mode),
            "object": object_id,
        }
        return content, {object_id: path}
    if not path.is_dir():
        raise MLOpsUsageError(f"{path} is neither a file nor a folder")
    entries, sources = [], {}
    for relpath, file_path, st in walk(path):
        object_id = cache.file_id(file_path, st)
        entries.append(
            {
                "path": relpath,
                "size": st.st_size,
                "mode": stat.S_IMODE(st.st_mode),
                "object": object_id,
            }
        )
        sources[object_id] = file_path
    content = {"format": PATH_FORMAT, "kind": "dir", "name": path.name, "entries": entries}
    return content, sources


def store_file(backend: Backend, object_id: str, source: Path) -> None:
    with backend.writer(object_key(object_id)) as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out, COPY_BLOCK)


def safe_relpath(relpath: str) -> PurePosixPath:
    """A manifest path that stays inside the restore folder (manifests may come from a remote)."""
    pure = PurePosixPath(relpath)
    if pure.is_absolute() or not pure.parts or any(p in ("", ".", "..") for p in pure.parts):
        raise MLOpsUsageError(f"refusing to restore the unsafe path {relpath!r}")
    return pure


def restore_object(
    backend: Backend, object_id: str, target: Path, mode: int, *, verify: bool, snapshot: str
) -> None:
    """Copy one object to ``target``, re-hashing the bytes on the way when ``verify``."""
    key = object_key(object_id)
    hasher = blake3()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        local = backend.local_path(key)
        with open(target, "wb") as out:
            if local:
                with open(local, "rb") as src:
                    while block := src.read(COPY_BLOCK):
                        hasher.update(block)
                        out.write(block)
            else:
                data = backend.read(key)
                hasher.update(data)
                out.write(data)
    except FileNotFoundError:
        raise SnapshotCorrupted(snapshot, f"object {key}", "missing") from None
    if verify and hasher.hexdigest() != object_id:
        target.unlink(missing_ok=True)
        raise SnapshotCorrupted(snapshot, f"object {key}", "its bytes do not hash to its id")
    os.chmod(target, mode)


def matches(target: Path, content: dict[str, Any], cache: StatCache) -> bool:
    """Does ``target`` already hold exactly these bytes (modes aside)?"""
    try:
        found, _ = describe_path(target, cache)
    except (OSError, MLOpsUsageError):
        return False
    if found["kind"] != content["kind"]:
        return False
    if content["kind"] == "file":
        return bool(found["object"] == content["object"])

    def listing(c: dict[str, Any]) -> list[tuple[str, str]]:
        return [(e["path"], e["object"]) for e in c["entries"]]

    return listing(found) == listing(content)


def materialise(
    backend: Backend,
    content: dict[str, Any],
    target: Path,
    *,
    verify: bool,
    snapshot: str,
) -> Path:
    """Restore a file or folder snapshot at ``target``, built beside it and renamed into place."""
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.partial"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if content["kind"] == "file":
            restore_object(
                backend,
                content["object"],
                staging,
                content["mode"],
                verify=verify,
                snapshot=snapshot,
            )
        else:
            staging.mkdir()
            for entry in content["entries"]:
                destination = staging.joinpath(*safe_relpath(entry["path"]).parts)
                restore_object(
                    backend,
                    entry["object"],
                    destination,
                    entry["mode"],
                    verify=verify,
                    snapshot=snapshot,
                )
        os.replace(staging, target)
    finally:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            staging.unlink(missing_ok=True)
    return target
