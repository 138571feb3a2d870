"""Recognise a table this process has already snapshotted, without cutting or hashing it again.

A re-snapshot of an unchanged frame must cost about reading it once: its identity content (row
chunks and cell ids) is a pure function of the Arrow data, the schema, the restore facts and the
chunking. :func:`fingerprint` hashes exactly those, straight from the Arrow buffers (BLAKE3 on all
cores, about 10 GB/s here, against ~2 GB/s for the canonical per-cell hashing and row chunking),
and :data:`RECENT` remembers the content computed for each fingerprint in this process;
:class:`Seen` remembers, on disk beside the file stat cache, the snapshot id each fingerprint
was saved as, so a kernel restarted (or a notebook run again) recalls it too: the content is then
read from the store's manifest, which is checked against its id.

The fingerprint is over-inclusive, never under: it hashes the raw bytes of every buffer range a
column's values live in (bytes under nulls included), so two tables with equal fingerprints hold
equal values, while two equal tables laid out differently (other bytes under nulls, another chunk
layout) merely miss and take the full path. Types whose layout this module does not walk (lists,
structs, unions, extension types) give no fingerprint: such tables always take the full path.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blake3 import blake3

from .hashing import CELL_ID_VERSION, FORMAT_VERSION, byte_width

if TYPE_CHECKING:
    import pyarrow as pa

FINGERPRINT_VERSION = 1
RECENT_ENTRIES = 32  # tables remembered per process (a 10M-row frame's content is ~0.5 MB)
SEEN_ENTRIES = 256  # fingerprints remembered on disk (a file of 64 bytes each); oldest go first
_HEX_ID = re.compile(r"[0-9a-f]{64}")
SEEN_FOLDER = "fingerprints"  # beside the file stat cache, in the project's cache folder


def seen_folder(stat_cache: Path) -> Path:
    return stat_cache.parent / SEEN_FOLDER


class _Unsupported(Exception):
    pass


def _feed_chunk(hasher: Any, chunk: pa.Array) -> None:
    """The header and value bytes of one array, exactly the ranges its rows use."""
    import pyarrow as pa

    t = chunk.type
    n, offset = len(chunk), chunk.offset
    buffers = chunk.buffers()
    header = [str(t), n, offset % 8, chunk.null_count]
    hasher.update(json.dumps(header).encode())
    if n == 0 or pa.types.is_null(t):
        return
    if chunk.null_count:
        hasher.update(memoryview(buffers[0])[offset // 8 : (offset + n + 7) // 8])
    if pa.types.is_dictionary(t):
        _feed_chunk(hasher, chunk.indices)
        _feed_chunk(hasher, chunk.dictionary)
    elif pa.types.is_boolean(t):
        hasher.update(memoryview(buffers[1])[offset // 8 : (offset + n + 7) // 8])
    elif pa.types.is_string(t) or pa.types.is_binary(t):
        _feed_var(hasher, buffers, offset, n, 4)
    elif pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        _feed_var(hasher, buffers, offset, n, 8)
    elif (width := byte_width(t)) and not isinstance(t, pa.ExtensionType) and len(buffers) == 2:
        hasher.update(memoryview(buffers[1])[offset * width : (offset + n) * width])
    else:
        raise _Unsupported(str(t))


def _feed_var(hasher: Any, buffers: list[Any], offset: int, n: int, width: int) -> None:
    """Offsets of a string/binary array (raw), then the data bytes between its first and last."""
    offsets = memoryview(buffers[1])[offset * width : (offset + n + 1) * width]
    hasher.update(offsets)
    values = offsets.cast("q" if width == 8 else "i")
    first, last = values[0], values[-1]
    if buffers[2] is not None and last > first:
        hasher.update(memoryview(buffers[2])[first:last])


def fingerprint(table: pa.Table, schema: pa.Schema, facts: dict[str, Any]) -> str | None:
    """A hash of ``schema``, every column of ``table`` (in the schema's order) and the other
    ``facts`` its content depends on; None when a column's type is not one this module walks."""
    hasher = blake3(max_threads=blake3.AUTO)
    # The formats the content is computed in: a fingerprint kept on disk (see Seen) must not
    # recall a content an older jupyter-mlops computed otherwise.
    versions = [FINGERPRINT_VERSION, FORMAT_VERSION, CELL_ID_VERSION]
    head = json.dumps([versions, facts], sort_keys=True, default=str)
    hasher.update(head.encode())
    hasher.update(schema.serialize())
    try:
        for column in table.columns:
            hasher.update(f"column {column.num_chunks}".encode())
            for chunk in column.chunks:
                _feed_chunk(hasher, chunk)
    except _Unsupported:
        return None
    return str(hasher.hexdigest())


class Recent:
    """Fingerprint -> identity content, for the last few tables this process snapshotted."""

    def __init__(self, size: int = RECENT_ENTRIES) -> None:
        self.size = size
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str | None) -> dict[str, Any] | None:
        if key is None:
            return None
        with self._lock:
            content = self._items.get(key)
            if content is not None:
                self._items.move_to_end(key)
            return content

    def put(self, key: str | None, content: dict[str, Any]) -> None:
        if key is None:
            return
        with self._lock:
            self._items[key] = content
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


RECENT = Recent()


class Seen:
    """Fingerprint -> snapshot id, one small file each in ``folder`` (the project's cache), for
    tables saved by any process of this project. Only ids are kept: a damaged or stale entry
    names a snapshot the store lacks, or none, and the table takes the full path."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, key: str | None) -> str | None:
        if key is None or not _HEX_ID.fullmatch(key):
            return None
        try:
            found = (self.folder / key).read_text().strip()
        except OSError:
            return None
        return found if _HEX_ID.fullmatch(found) else None

    def put(self, key: str | None, snapshot_id: str) -> None:
        """Remember ``key`` (a cache: a write that fails is only a later full path)."""
        if key is None or not _HEX_ID.fullmatch(key):
            return
        tmp = self.folder / f".{key}.{uuid.uuid4().hex}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_text(snapshot_id)
            os.replace(tmp, self.folder / key)
            self._prune()
        except OSError:
            tmp.unlink(missing_ok=True)

    def _prune(self) -> None:
        entries = [e for e in os.scandir(self.folder) if _HEX_ID.fullmatch(e.name)]
        if len(entries) <= 2 * SEEN_ENTRIES:
            return
        entries.sort(key=lambda e: e.stat().st_mtime)
        for entry in entries[: len(entries) - SEEN_ENTRIES]:
            Path(entry.path).unlink(missing_ok=True)

    def clear(self) -> None:
        for entry in self.folder.glob("*"):
            entry.unlink(missing_ok=True)
