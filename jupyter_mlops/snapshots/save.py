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

from ..errors import MLOpsError, MLOpsUsageError
from .cells import Compression, write_cell
from .chunking import Chunker, Chunking
from .files import StatCache, describe_path, store_file
from .fingerprints import RECENT, Seen, fingerprint, seen_folder
from .frames import NotArrow, opaque_columns, pandas_metadata, to_arrow
from .hashing import FORMAT_VERSION, HASH_NAME, cell_id, digest_bytes, digest_json, type_label
from .names import check_name
from .progress import Progress
from .provenance import now, provenance
from .repository import SnapshotStore, manifest_key, object_key
from .results import Snapshot
from .sources import Source, open_source, rebatch
from .stats import ColumnStats
from .store import Backend
from .verify import object_ids

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

WORKERS = max(1, min(4, os.cpu_count() or 1))
# Cells are packed (a few 8 MB writes per save), so a disk store's threads mostly compute: one
# per core (measured: more threads only fight for the GIL, 0.76 s against 1.0 s for 8).
WRITERS = WORKERS
# Loose cells (a store that does not pack) wait on one fsync each: more threads overlap those
# waits (ext4 commits concurrent fsyncs in one journal transaction).
LOOSE_WRITERS = 4 * WORKERS
# An object store's requests wait on the network, not the disk: more of them in flight.
REMOTE_WRITERS = 32


def request_threads(backend: Backend) -> int:
    """Threads that ask ``backend`` about objects (or write loose ones): more for an object
    store, whose requests wait on the network, than for a disk."""
    return LOOSE_WRITERS if backend.local_path("FORMAT") is not None else REMOTE_WRITERS


def io_threads(backend: Backend) -> int:
    """Threads that hash, encode and store cells: one per core where cells are packed (the packs
    are written by their own background threads), else as many as the requests need."""
    return WRITERS if backend.packs is not None else request_threads(backend)


class _Writes:
    """What one save wrote: new objects and their bytes, and the size of every object used.

    Thread-safe: equal cells (an all-null column's chunks) are claimed once, and the other
    threads wait for that write instead of writing (and counting) the same object again.
    """

    def __init__(self, known: set[str] | None = None) -> None:
        self.new_objects = 0
        self.new_bytes = 0
        self.sizes: dict[str, int] = {}
        # Objects a live version of this name references: they exist (gc runs only while no save
        # holds the store lock), so they are neither asked for nor touched; their sizes are
        # looked up only if a new manifest needs them (see ``fill_sizes``).
        self.known = known or set()
        self.reused: set[str] = set()
        self._claims: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def ensure(self, store: SnapshotStore, object_id: str, write: Callable[[], int | None]) -> bool:
        """Store the object unless it exists; True when this call wrote it. ``write`` returns
        the bytes it stored where it knows them (saves a stat per object)."""
        with self._lock:
            claim = self._claims.get(object_id)
            mine = claim is None
            if mine:
                claim = self._claims[object_id] = threading.Event()
        assert claim is not None
        if not mine:
            claim.wait()
            return False
        new = False
        if object_id in self.known:
            with self._lock:
                self.reused.add(object_id)
            claim.set()
            return False
        try:
            key = object_key(object_id)
            backend = store.backend
            if backend.blind_writes:
                if not backend.kept(key):  # kept: known stored without a request (a pack)
                    write()
                if backend.kept(key):
                    with self._lock:
                        self.reused.add(object_id)
                    return False
                size, new = backend.size(key), True
            elif backend.exists(key):
                backend.touch(key)  # a fresh mtime keeps gc's grace period off a reused object
                size, new = backend.size(key), False
            else:
                written = write()
                size, new = (backend.size(key) if written is None else written), True
            with self._lock:
                self.sizes[object_id] = size
                if new:
                    self.new_objects += 1
                    self.new_bytes += size
        finally:
            claim.set()
        return new

    def fill_sizes(self, backend: Backend, threads: int) -> None:
        """The sizes of the known objects this save used (a stat, or a HEAD, each)."""
        missing = sorted(self.reused - self.sizes.keys())
        if not missing:
            return
        with ThreadPoolExecutor(threads) as pool:
            sizes = list(pool.map(lambda i: backend.size(object_key(i)), missing))
        self.sizes.update(zip(missing, sizes, strict=True))


def known_objects(store: SnapshotStore, name: str) -> set[str]:
    """Every object the latest live version of ``name`` references (empty if it has none or
    cannot be read: the save then asks the store about each object, as for a new name)."""
    try:
        versions = store.versions(name)
        if not versions:
            return set()
        manifest = store.manifest(store.record(name, versions[-1])["snapshot"])
    except (MLOpsError, OSError, ValueError, KeyError, TypeError):
        return set()
    content = manifest.get("content", {})
    found = {cell for column in content.get("columns", []) for cell in column.get("cells", [])}
    entries = [content, *content.get("opaque", []), *content.get("entries", [])]
    found.update(entry.get("object") for entry in entries)
    return {i for i in found if isinstance(i, str)}


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

    def write() -> int:
        with store.backend.writer(object_key(object_id)) as fh:
            fh.write(data)
        return len(data)

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
        table=None if opaque else table,
    )
    return source, opaque


def _cell_values(chunk: pa.Table, field: str) -> pa.ChunkedArray:
    """One column of a row chunk, as the slices of the source batches it spans (no copy); a
    dictionary column whose batches differ in dictionary (a polars categorical) is unified
    into one array, since an Arrow IPC file holds one dictionary per column."""
    import pyarrow as pa

    values = chunk.column(field)
    if values.num_chunks > 1 and pa.types.is_dictionary(values.type):
        first = values.chunk(0).dictionary
        if any(not c.dictionary.equals(first) for c in values.chunks[1:]):
            unified = pa.table({field: values}).unify_dictionaries().combine_chunks()
            return unified.column(0)
    return values


# Stats are put off until a new manifest needs them: an unchanged re-snapshot finds its manifest
# and computes none. Of a streamed source, up to this many bytes of batches are held for them;
# past it a batch's stats are computed as it comes. A frame or table in memory is held whole.
DEFER_BYTES = 256 << 20


def table_content(
    store: SnapshotStore,
    source: Source,
    name: str,
    writes: _Writes,
    chunking: Chunking | None = None,
    dtypes: dict[str, str] | None = None,
) -> tuple[Content, Details]:
    """Cut ``source`` into content-defined row chunks, store each column x chunk cell that is
    missing, and return the identity content; only a few row chunks are in memory at once.

    Stats are computed per column over the source batches (not per cell: fewer, larger calls),
    once the manifest is known to be missing (see ``DEFER_BYTES``)."""
    schema = source.schema
    chunking = chunking or Chunking.for_schema(schema)
    names = schema.names
    meta = pandas_metadata(schema)
    index_fields = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    labels = {c["field_name"]: c["name"] for c in meta.get("columns", [])}
    cells: dict[str, list[str]] = {f: [] for f in names}
    # Per field, in row order: stats of source batches, or their values while they are put off.
    parts: dict[str, list[Future[ColumnStats] | pa.Array]] = {f: [] for f in names}
    deferred = 0
    budget = max(DEFER_BYTES, source.nbytes or 0)
    held = source.table is not None
    lengths: list[int] = []
    inflight: deque[tuple[str, pa.ChunkedArray, Future[str]]] = deque()
    threads = io_threads(store.backend)
    limit = max(1, len(names)) * 2 + threads

    # Hashing, encoding and stats run on at most one thread per core; the other I/O threads
    # wait on fsync or the network. More CPU-bound threads than cores only fight for the GIL
    # between Arrow calls (measured: slower).
    cpu = threading.BoundedSemaphore(WORKERS)
    compression = Compression()

    def part_of(values: pa.ChunkedArray | pa.Array) -> ColumnStats:
        part = ColumnStats(values.type)
        with cpu:
            part.add(values)
        return part

    def cell(field: str, values: pa.ChunkedArray) -> str:
        with cpu:
            object_id = cell_id(field, values)
        writes.ensure(
            store,
            object_id,
            lambda: write_cell(store.backend, object_id, field, values, cpu, compression),
        )
        return object_id

    with (
        Progress(source.nbytes, f"snapshot {name}") as progress,
        ThreadPoolExecutor(threads) as pool,
    ):

        def settle(keep: int) -> None:
            while len(inflight) > keep:
                field, values, future = inflight.popleft()
                cells[field].append(future.result())
                progress.advance(values.nbytes)

        def submit(chunk: pa.Table) -> None:
            lengths.append(chunk.num_rows)
            for field in names:
                values = _cell_values(chunk, field)
                inflight.append((field, values, pool.submit(cell, field, values)))
            settle(limit)

        def keep_for_stats(batch: pa.RecordBatch) -> None:
            nonlocal deferred
            # A source held whole in memory is held anyway: all its stats wait for the end, one
            # call per column (measured: 5% faster than per batch while cells are cut). Of a
            # streamed one, nothing more is put off past the budget, or once a cell is new: the
            # snapshot id is then new too, so its manifest will need the stats.
            eager = deferred + batch.nbytes > budget or (writes.new_objects > 0 and not held)
            if not eager:
                deferred += batch.nbytes
            for field, values in zip(names, batch.columns, strict=True):
                parts[field].append(pool.submit(part_of, values) if eager else values)

        chunker = Chunker(chunking, schema)
        for batch in source.batches:
            keep_for_stats(batch)
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

    def column_stats(field: str, pool: ThreadPoolExecutor) -> Future[ColumnStats]:
        """The field's stats: runs of put-off batches in one call each, merged in row order."""

        def merged() -> ColumnStats:
            import pyarrow as pa

            total = ColumnStats(schema.field(field).type)
            run: list[pa.Array] = []
            for p in [*parts[field], None]:
                if isinstance(p, pa.Array):
                    run.append(p)
                    continue
                if run:
                    total.merge(part_of(pa.chunked_array(run, schema.field(field).type)))
                    run = []
                if p is not None:
                    total.merge(p.result())
            return total

        return pool.submit(merged)

    def details() -> dict[str, Any]:
        with ThreadPoolExecutor(WORKERS) as pool:
            futures = {f: column_stats(f, pool) for f in names}
            stats = {f: futures[f].result().result() for f in names}
        parts.clear()
        columns = [
            {
                "name": f,
                "label": labels.get(f, f),
                "index": f in index_fields,
                "pandas_dtype": (dtypes or {}).get(str(labels.get(f, f))),
                "arrow_type": str(schema.field(f).type),
                "bytes": sum(writes.sizes[c] for c in cells[f]),
                "stats": stats[f],
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


def table_fingerprint(
    source: Source, chunking: Chunking | None, facts: dict[str, Any]
) -> str | None:
    """The fingerprint of a source held whole in memory (None for a streamed one)."""
    if source.table is None:
        return None
    chunking = chunking or Chunking.for_schema(source.schema)
    facts = {**facts, "chunking": chunking.describe(source.schema), "restore": source.restore}
    return fingerprint(source.table, source.schema, facts)


def recall(
    store: SnapshotStore, writes: _Writes, key: str | None, seen: Seen | None = None
) -> Content | None:
    """The identity content computed for the same table, by this process or (``seen``) an
    earlier one, if the store still has all of it: its manifest, and every cell among the
    objects of the name's latest live version (which gc never removes). Otherwise None, and the
    table takes the full path."""
    content = RECENT.get(key)
    if content is None and seen is not None and (snapshot_id := seen.get(key)) is not None:
        try:
            content = store.manifest(snapshot_id)["content"]  # checked against its id
        except (MLOpsError, OSError, KeyError, TypeError):
            return None
    if content is None or not {i for i, _ in object_ids({"content": content})} <= writes.known:
        return None
    if not store.backend.exists(manifest_key(digest_json(content))):
        return None
    return content


def _unused_details() -> dict[str, Any]:
    raise AssertionError("a recalled snapshot's manifest exists: its details are not needed")


def recalled_or_table_content(
    store: SnapshotStore,
    source: Source,
    name: str,
    writes: _Writes,
    chunking: Chunking | None,
    facts: dict[str, Any],
    seen: Seen,
    dtypes: dict[str, str] | None = None,
) -> tuple[Content, Details, bool, str | None]:
    """(content, details, recalled, fingerprint): the content :func:`recall` finds for the
    source's fingerprint, else :func:`table_content`'s."""
    if not writes.known:
        # Nothing of this name is stored, so nothing can be recalled: the fingerprint (kept for
        # the next save) is taken on a thread of its own while the table is cut, off the path.
        with ThreadPoolExecutor(1) as pool:
            later = pool.submit(table_fingerprint, source, chunking, facts)
            content, details = table_content(store, source, name, writes, chunking, dtypes)
            return content, details, False, later.result()
    key = table_fingerprint(source, chunking, facts)
    if (recalled := recall(store, writes, key, seen)) is not None:
        return recalled, _unused_details, True, key
    return (*table_content(store, source, name, writes, chunking, dtypes), False, key)


def publish_manifest(
    store: SnapshotStore, snapshot_id: str, content: Content, details: Details, writes: _Writes
) -> dict[str, Any]:
    """The manifest of ``snapshot_id``: the stored one if it exists (no stats recomputed)."""
    if store.backend.exists(manifest_key(snapshot_id)):
        if writes.new_objects:
            store.backend.sync()  # objects written again (gc removed them): keep them
        return store.manifest(snapshot_id)
    writes.fill_sizes(store.backend, request_threads(store.backend))
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
    chunking = Chunking.around(chunk_rows) if chunk_rows else None
    store.ensure_format()
    with store.backend.lock(exclusive=False):
        writes = _Writes(known_objects(store, name))
        source = obj if isinstance(obj, Source) else None
        key: str | None = None  # the fingerprint of an in-memory table (see .fingerprints)
        seen = Seen(seen_folder(stat_cache))
        if isinstance(obj, pd.DataFrame):
            source, opaque = pandas_source(store, writes, obj, allow_pickle)
            dtypes = {str(k): str(v) for k, v in obj.dtypes.items()}
            facts = {"dtypes": dtypes, "rows": len(obj)}
            content, details, recalled, key = recalled_or_table_content(
                store, source, name, writes, chunking, facts, seen, dtypes
            )
            if not recalled:
                if opaque:
                    content["opaque"] = opaque
                if not source.schema.names:
                    content["rows"] = len(obj)  # Arrow carries no rows without columns
        elif source is not None or (source := open_source(obj)) is not None:
            content, details, _, key = recalled_or_table_content(
                store, source, name, writes, chunking, {}, seen
            )
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
        RECENT.put(key, content)
        seen.put(key, snapshot_id)
        numbers, removed = store.numbers(name)
        versions = [v for v in numbers if v not in removed]
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
        version = store.add_version(name, record, numbers)
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
