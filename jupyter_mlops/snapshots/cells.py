"""Cells on disk: one Arrow IPC file per column x row chunk, zstd-compressed, verified on read."""

from __future__ import annotations

import contextlib
import functools
import threading
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .errors import SnapshotCorrupted
from .hashing import cell_id
from .repository import object_key
from .store import Backend

if TYPE_CHECKING:
    import pyarrow as pa

CODEC = "zstd"
CODEC_LEVEL = 1
# A column whose cells zstd shrinks by less than this share is stored plain: random floats or
# hashes cost zstd as much time as any column and give back a few percent of their bytes.
MIN_SAVING = 0.1
RETRY_EVERY = 16  # a plain column's every 16th cell is compressed again, in case that changed


class Compression:
    """Per column of one save, whether its cells are worth compressing, learnt from the cells
    compressed so far. Only the stored bytes depend on it, never a cell's id. Thread-safe."""

    def __init__(self) -> None:
        self._plain: dict[str, int] = {}  # column -> its cells stored plain since the last try
        self._lock = threading.Lock()

    def wanted(self, name: str) -> bool:
        with self._lock:
            skipped = self._plain.get(name)
            if skipped is None:
                return True
            self._plain[name] = skipped + 1
            return (skipped + 1) % RETRY_EVERY == 0

    def learn(self, name: str, plain_bytes: int, stored_bytes: int) -> None:
        with self._lock:
            if stored_bytes > plain_bytes * (1 - MIN_SAVING):
                self._plain.setdefault(name, 0)
            else:
                self._plain.pop(name, None)


def encode_cell(name: str, values: pa.ChunkedArray, compress: bool = True) -> pa.Buffer:
    """The cell's IPC file bytes, built in Arrow's memory (no GIL held, no Python per write)."""
    import pyarrow as pa

    table = pa.table({name: values})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=_write_options(compress)) as writer:
        writer.write_table(table)
    return sink.getvalue()


@functools.cache
def _write_options(compress: bool) -> pa.ipc.IpcWriteOptions:
    """The IPC options of every cell (read-only, shared by the encoding threads)."""
    import pyarrow as pa

    # Compressed on the calling thread: cells are already encoded in parallel, and handing
    # each cell's few buffers to Arrow's own pool only adds thread switches (measured).
    codec = pa.Codec(CODEC, compression_level=CODEC_LEVEL) if compress else None
    return pa.ipc.IpcWriteOptions(compression=codec, use_threads=False)


def write_cell(
    backend: Backend,
    object_id: str,
    name: str,
    values: pa.ChunkedArray,
    cpu: AbstractContextManager[Any] | None = None,
    compression: Compression | None = None,
) -> int:
    """Encode and store one cell (returns its bytes); ``cpu`` (a semaphore) bounds how many
    threads encode at once; ``compression`` learns which columns are worth compressing."""
    compress = compression is None or compression.wanted(name)
    with cpu or contextlib.nullcontext():
        data = encode_cell(name, values, compress)
    if compression is not None and compress:
        compression.learn(name, values.nbytes, data.size)
    with backend.writer(object_key(object_id)) as fh:
        fh.write(memoryview(data))
    return int(data.size)


def read_cell(
    backend: Backend, object_id: str, name: str, *, verify: bool, snapshot: str
) -> pa.ChunkedArray:
    """Decode one cell; with ``verify``, re-hash it and raise if it is not what its id says."""
    import pyarrow as pa

    key = object_key(object_id)
    where = f"object {key} (column {name!r})"
    try:
        path = backend.local_path(key)
        source = pa.memory_map(path) if path else pa.BufferReader(backend.read(key))
        with source, pa.ipc.open_file(source) as reader:
            column = reader.read_all().column(0)
    except FileNotFoundError:
        raise SnapshotCorrupted(snapshot, where, "missing") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise SnapshotCorrupted(snapshot, where, f"cannot be decoded: {exc}") from None
    if verify and cell_id(name, column) != object_id:
        raise SnapshotCorrupted(snapshot, where, "its data does not hash to its id")
    return column
