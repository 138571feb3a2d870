"""The write path: hash every cell, store the missing ones, then the manifest, then the version.

Cells are hashed and written on a small thread pool (BLAKE3, zstd and file I/O release the GIL).
Each object is published atomically before the manifest that names it, and the version file is
created last, exclusively: a crash at any point leaves no version pointing at partial data, and
two kernels saving the same name both get their own version.
"""

from __future__ import annotations

import base64
import functools
import os
import pickle
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MLOpsUsageError
from .cells import write_cell
from .chunking import Chunker, Chunking
from .files import StatCache, describe_path, store_file
from .frames import NotArrow, opaque_columns, pandas_metadata, to_arrow
from .hashing import FORMAT_VERSION, HASH_NAME, cell_id, digest_bytes, digest_json, type_label
from .names import check_name
from .progress import Progress
from .provenance import now, provenance
from .repository import SnapshotStore, manifest_key, object_key
from .results import Snapshot
from .sources import Source, open_source, rebatch
from .stats import ColumnStats

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

WORKERS = max(1, min(4, os.cpu_count() or 1))
# Writers spend most of a cell's time waiting on fsync: more threads than cores overlap those
# waits (ext4 commits concurrent fsyncs in one journal transaction).
WRITERS = 4 * WORKERS


class _Writes:
    """What one save wrote: new objects and their bytes, and the size of every object used.

    Thread-safe: equal cells (an all-null column's chunks) are claimed once, and the other
    threads wait for that write instead of writing (and counting) the same object again.
    """

    def __init__(self) -> None:
        self.new_objects = 0
        self.new_bytes = 0
        self.sizes: dict[str, int] = {}
        self._claims: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def ensure(self, store: SnapshotStore, object_id: str, write: Callable[[], None]) -> None:
        with self._lock:
            claim = self._claims.get(object_id)
            mine = claim is None
            if mine:
                claim = self._claims[object_id] = threading.Event()
        assert claim is not None
        if not mine:
            claim.wait()
            return
        try:
            key = object_key(object_id)
            backend = store.backend
            if backend.exists(key):
                backend.touch(key)  # a fresh mtime keeps gc's grace period off a reused object
                size, new = backend.size(key), False
            else:
                write()
                size, new = backend.size(key), True
            with self._lock:
                self.sizes[object_id] = size
                if new:
                    self.new_objects += 1
                    self.new_bytes += size
        finally:
            claim.set()


def _check_tags(tags: dict[str, Any] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise MLOpsUsageError(f"tags must be a dict of str to str, got {type(tags).__name__}")
    return {str(k): str(v) for k, v in tags.items()}


Content = dict[str, Any]
Details = Callable[[], dict[str, Any]]


def pickled_column(
    store: SnapshotStore, writes: _Writes, df: pd.DataFrame, position: int
) -> dict[str, Any]:
    """Store a column Arrow cannot hold as one opaque pickle-5 object (opted into by the user).

    Its id is the hash of the pickle bytes: not canonical (a copy may pickle differently), so
    an opaque column can show as changed in a diff; it still loads back exactly.
    """
    column = df.iloc[:, position]
    data = pickle.dumps(column, protocol=5)
    object_id = digest_bytes(data)

    def write() -> None:
        with store.backend.writer(object_key(object_id)) as fh:
            fh.write(data)

    writes.ensure(store, object_id, write)
    return {
        "position": position,
        "label": str(column.name),
        "dtype": str(column.dtype),
        "object": object_id,
    }


def pandas_source(
    store: SnapshotStore, writes: _Writes, df: pd.DataFrame, allow_pickle: bool
) -> tuple[Source, list[dict[str, Any]]]:
    """A frame as a source; columns Arrow cannot hold are pickled (when allowed) and returned."""
    opaque: list[dict[str, Any]] = []
    try:
        table, fixes = to_arrow(df)
    except NotArrow:
        positions = opaque_columns(df, allow_pickle=allow_pickle)
        if not positions:
            raise
        keep = [i for i in range(df.shape[1]) if i not in positions]
        table, fixes = to_arrow(df.iloc[:, keep])
        opaque = [pickled_column(store, writes, df, i) for i in positions]
    source = Source(
        table.schema,
        rebatch(iter(table.to_batches()), table.schema),
        "pandas",
        restore=fixes,
        nbytes=table.nbytes,
    )
    return source, opaque


def _one_chunk(chunk: pa.Table) -> pa.Table:
    """The row chunk as one contiguous batch (batches of a polars categorical differ in
    dictionary, so those are unified first)."""
    import pyarrow as pa

    try:
        return chunk.combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return chunk.unify_dictionaries().combine_chunks()


def table_content(
    store: SnapshotStore,
    source: Source,
    name: str,
    writes: _Writes,
    chunking: Chunking | None = None,
    dtypes: dict[str, str] | None = None,
) -> tuple[Content, Details]:
    """Cut ``source`` into content-defined row chunks, store each column x chunk cell that is
    missing, and return the identity content; only a few row chunks are in memory at once."""
    schema = source.schema
    chunking = chunking or Chunking.for_schema(schema)
    names = schema.names
    meta = pandas_metadata(schema)
    index_fields = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    labels = {c["field_name"]: c["name"] for c in meta.get("columns", [])}
    stats = {f: ColumnStats(schema.field(f).type) for f in names}
    cells: dict[str, list[str]] = {f: [] for f in names}
    lengths: list[int] = []
    inflight: deque[tuple[str, int, Future[tuple[str, ColumnStats]]]] = deque()
    limit = max(1, len(names)) * 2 + WRITERS

    def cell(field: str, values: pa.ChunkedArray) -> tuple[str, ColumnStats]:
        object_id = cell_id(field, values)
        writes.ensure(store, object_id, lambda: write_cell(store.backend, object_id, field, values))
        part = ColumnStats(values.type)
        part.add(values)
        return object_id, part

    with (
        Progress(source.nbytes, f"snapshot {name}") as progress,
        ThreadPoolExecutor(WRITERS) as pool,
    ):

        def settle(keep: int) -> None:
            while len(inflight) > keep:
                field, nbytes, future = inflight.popleft()
                object_id, part = future.result()
                cells[field].append(object_id)
                stats[field].merge(part)  # in row order, as the rows came
                progress.advance(nbytes)

        def submit(chunk: pa.Table) -> None:
            chunk = _one_chunk(chunk)
            lengths.append(chunk.num_rows)
            for field in names:
                values = chunk.column(field)
                inflight.append((field, values.nbytes, pool.submit(cell, field, values)))
            settle(limit)

        chunker = Chunker(chunking, schema)
        for batch in source.batches:
            for chunk in chunker.feed(batch):
                submit(chunk)
        for chunk in chunker.finish():
            submit(chunk)
        settle(0)

    content = {
        "format": FORMAT_VERSION,
        "kind": "dataframe",
        "rows": sum(lengths),
        "chunking": chunking.describe(schema),
        "chunks": lengths,
        "columns": [
            {"name": f, "type": type_label(schema.field(f).type), "cells": cells[f]} for f in names
        ],
        "pandas": meta,
        "restore": source.restore,
    }

    def details() -> dict[str, Any]:
        columns = [
            {
                "name": f,
                "label": labels.get(f, f),
                "index": f in index_fields,
                "pandas_dtype": (dtypes or {}).get(str(labels.get(f, f))),
                "arrow_type": str(schema.field(f).type),
                "bytes": sum(writes.sizes[c] for c in cells[f]),
                "stats": stats[f].result(),
            }
            for f in names
        ]
        encoded = base64.b64encode(schema.serialize().to_pybytes()).decode()
        return {"columns": columns, "schema": encoded}

    return content, details


def path_content(
    store: SnapshotStore, path: Path, cache_path: Path, name: str, writes: _Writes
) -> tuple[Content, Details]:
    cache = StatCache(cache_path)
    try:
        content, sources = describe_path(path, cache)
    finally:
        cache.close()
    with Progress(len(sources), f"snapshot {name}", unit="file") as progress:
        for object_id, source in sources.items():
            writes.ensure(
                store, object_id, functools.partial(store_file, store.backend, object_id, source)
            )
            progress.advance()
    return content, dict


def publish_manifest(
    store: SnapshotStore, snapshot_id: str, content: Content, details: Details, writes: _Writes
) -> dict[str, Any]:
    """The manifest of ``snapshot_id``: the stored one if it exists (no stats recomputed)."""
    if store.backend.exists(manifest_key(snapshot_id)):
        return store.manifest(snapshot_id)
    manifest = {
        "id": snapshot_id,
        "hash": HASH_NAME,
        "content": content,
        **details(),
        "bytes": sum(writes.sizes.values()),
        "objects": len(writes.sizes),
    }
    store.backend.sync()  # every object's name is durable before a manifest names it
    store.put_manifest(manifest)
    store.backend.sync()
    return manifest


def save(
    store: SnapshotStore,
    obj: Any,
    name: str,
    *,
    tags: dict[str, Any] | None = None,
    message: str | None = None,
    stat_cache: Path,
    chunk_rows: int | None = None,
    allow_pickle: bool = False,
) -> Snapshot:
    """Snapshot a table source (any kind :mod:`.sources` knows), a file or a folder as the next
    version of ``name``; ``chunk_rows`` sets the average row chunk (default: from the schema)."""
    import pandas as pd

    check_name(name)
    tag_map = _check_tags(tags)
    writes = _Writes()
    chunking = Chunking.around(chunk_rows) if chunk_rows else None
    store.ensure_format()
    with store.backend.lock(exclusive=False):
        source = obj if isinstance(obj, Source) else None
        if isinstance(obj, pd.DataFrame):
            source, opaque = pandas_source(store, writes, obj, allow_pickle)
            dtypes = {str(k): str(v) for k, v in obj.dtypes.items()}
            content, details = table_content(store, source, name, writes, chunking, dtypes)
            if opaque:
                content["opaque"] = opaque
            if not source.schema.names:
                content["rows"] = len(obj)  # Arrow carries no rows without columns
        elif source is not None or (source := open_source(obj)) is not None:
            content, details = table_content(store, source, name, writes, chunking)
        elif isinstance(obj, str | os.PathLike):
            path = Path(obj).expanduser()
            if not path.exists():
                raise MLOpsUsageError(f"no file or folder at {path}")
            content, details = path_content(store, path, stat_cache, name, writes)
        else:
            raise MLOpsUsageError(
                f"cannot snapshot a {type(obj).__name__}; give a pandas or polars frame, an "
                "Arrow table or record-batch reader, a Parquet path or URL, a file or a folder"
            )
        snapshot_id = digest_json(content)
        manifest = publish_manifest(store, snapshot_id, content, details, writes)
        versions = store.versions(name)
        latest = store.record(name, versions[-1]) if versions else None
        location = store.backend.url(manifest_key(snapshot_id))
        if latest is not None and latest["snapshot"] == snapshot_id:
            return result(
                latest, manifest, reused=True, bytes_written=writes.new_bytes, location=location
            )
        record = {
            "snapshot": snapshot_id,
            "kind": manifest["content"]["kind"],
            "created": now(),
            "message": message,
            "tags": tag_map,
            "parent": (
                {"version": latest["version"], "snapshot": latest["snapshot"]} if latest else None
            ),
            "provenance": provenance(),
        }
        version = store.add_version(name, record)
    record = {**record, "name": name, "version": version}
    return result(
        record,
        manifest,
        bytes_written=writes.new_bytes,
        objects_written=writes.new_objects,
        location=location,
    )


def column_labels(manifest: dict[str, Any]) -> list[str]:
    """The frame's column labels in order, pickled (opaque) columns included."""
    labels = [c["label"] for c in manifest.get("columns", []) if not c["index"]]
    for entry in sorted(manifest["content"].get("opaque", []), key=lambda e: e["position"]):
        labels.insert(entry["position"], entry["label"])
    return labels


def result(
    record: dict[str, Any],
    manifest: dict[str, Any],
    *,
    reused: bool = False,
    bytes_written: int = 0,
    objects_written: int = 0,
    location: str = "",
) -> Snapshot:
    content = manifest["content"]
    kind = content["kind"]
    parent = record.get("parent")
    return Snapshot(
        name=record["name"],
        version=record["version"],
        id=record["snapshot"],
        kind=kind,
        rows=content.get("rows") if kind == "dataframe" else None,
        columns=column_labels(manifest),
        bytes_written=bytes_written,
        bytes=manifest.get("bytes", 0),
        objects=manifest.get("objects", 0),
        objects_written=objects_written,
        reused=reused,
        created=record.get("created", ""),
        message=record.get("message"),
        tags=dict(record.get("tags") or {}),
        parent=f"{record['name']}@v{parent['version']}" if parent else None,
        location=location,
    )
