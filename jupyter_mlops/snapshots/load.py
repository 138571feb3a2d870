"""The read path: decode the cells of a snapshot, re-hash each one, rebuild the exact frame.

Pickled (opaque) columns are never unpickled unless the caller passes ``allow_pickle=True``:
unpickling runs whatever code the snapshot's writer chose, so it is an explicit opt-in for every
store, local ones included. The Jupyter server never passes it.
"""

from __future__ import annotations

import shutil
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MLOpsUsageError
from .cells import read_cell
from .chunking import chunk_lengths
from .errors import SnapshotCorrupted
from .files import StatCache, matches, materialise, safe_relpath
from .frames import to_pandas
from .hashing import digest_bytes, type_label
from .integrity import cell_type_problem, stored_schema
from .progress import Progress
from .repository import Resolved, SnapshotStore, manifest_key, object_key
from .save import WORKERS

if TYPE_CHECKING:
    import pyarrow as pa


LOAD_FORMS = ("pandas", "arrow", "polars")
PREFETCH = WORKERS + 1  # row chunks read ahead of the one being handed out


def row_chunks(
    store: SnapshotStore, manifest: dict[str, Any], *, verify: bool, label: str
) -> Iterator[list[pa.ChunkedArray]]:
    """Each row chunk's columns, in order, every cell re-hashed (with ``verify``) as it is read.

    A few row chunks are decoded ahead on a thread pool; the rest stay on disk, so a snapshot
    of any size streams in bounded memory.
    """
    content = manifest["content"]
    schema = stored_schema(manifest)  # checked against the content by store.manifest
    columns = content["columns"]
    chunks = len(chunk_lengths(content)) if columns else 0
    sizes = {c["name"]: len(c["cells"]) for c in columns}
    if any(n != chunks for n in sizes.values()):
        problem = f"its columns hold {sorted(set(sizes.values()))} cells, not {chunks} each"
        raise SnapshotCorrupted(label, f"manifest {manifest_key(manifest['id'])}", problem)

    def read(k: int) -> list[pa.ChunkedArray]:
        arrays = []
        for field, column in zip(schema, columns, strict=True):
            cell = read_cell(
                store.backend, column["cells"][k], field.name, verify=verify, snapshot=label
            )
            if cell.type != field.type and type_label(cell.type) == type_label(field.type):
                cell = cell.cast(field.type)  # an equal cell stored by another source's layout
            problem = cell_type_problem(field, cell)
            if problem:
                raise SnapshotCorrupted(label, f"manifest {manifest_key(manifest['id'])}", problem)
            arrays.append(cell)
        return arrays

    with (
        Progress(manifest.get("bytes") or None, f"load {label}") as progress,
        ThreadPoolExecutor(WORKERS) as pool,
    ):
        ahead: deque[Future[list[pa.ChunkedArray]]] = deque()
        for k in range(chunks):
            ahead.append(pool.submit(read, k))
            if len(ahead) > PREFETCH:
                yield _handed(ahead.popleft(), progress)
        while ahead:
            yield _handed(ahead.popleft(), progress)


def _handed(future: Future[list[Any]], progress: Progress) -> list[Any]:
    arrays = future.result()
    progress.advance(sum(a.nbytes for a in arrays))
    return arrays


def load_table(
    store: SnapshotStore, manifest: dict[str, Any], *, verify: bool, label: str
) -> pa.Table:
    """The whole Arrow table of a frame snapshot (schema with its pandas metadata)."""
    import pyarrow as pa

    schema = stored_schema(manifest)
    parts: list[list[Any]] = [[] for _ in schema]
    for arrays in row_chunks(store, manifest, verify=verify, label=label):
        for i, array in enumerate(arrays):
            parts[i].extend(array.chunks)
    try:
        columns = [pa.chunked_array(p, type=f.type) for p, f in zip(parts, schema, strict=True)]
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SnapshotCorrupted(label, "cells", f"the cells of a column differ ({exc})") from None
    table = pa.Table.from_arrays(columns, schema=schema)
    rows = manifest["content"]["rows"]
    if table.num_columns and table.num_rows != rows:
        problem = f"cells hold {table.num_rows} rows, the manifest says {rows}"
        raise SnapshotCorrupted(label, "cells", problem)
    return table


def iter_batches(
    store: SnapshotStore, manifest: dict[str, Any], *, verify: bool, label: str
) -> Iterator[pa.RecordBatch]:
    """The frame as record batches, one per row chunk, verified cell by cell."""
    import pyarrow as pa

    refuse_pickles(manifest["content"], label)
    schema = stored_schema(manifest)
    for arrays in row_chunks(store, manifest, verify=verify, label=label):
        yield pa.RecordBatch.from_arrays([a.combine_chunks() for a in arrays], schema=schema)


def load_frame(
    store: SnapshotStore,
    manifest: dict[str, Any],
    *,
    verify: bool,
    label: str,
    allow_pickle: bool = False,
    as_: str = "pandas",
) -> Any:
    """The frame as ``pandas`` (exactly as saved), ``arrow`` (a Table) or ``polars``."""
    content = manifest["content"]
    if not allow_pickle or as_ != "pandas":
        refuse_pickles(content, label)
    table = load_table(store, manifest, verify=verify, label=label)
    if as_ == "arrow":
        return table
    if as_ == "polars":
        import polars as pl

        return pl.from_arrow(table)
    df = to_pandas(table, content["restore"])
    for entry in sorted(content.get("opaque", []), key=lambda e: e["position"]):
        column = read_pickled(store, entry, verify=verify, label=label, allowed=allow_pickle)
        if df.shape[1] == 0:
            # Arrow cannot carry rows without columns: take the index the pickle carries.
            df = df.reindex(column.index)
        df.insert(entry["position"], column.name, column.array)
    return df


def refuse_pickles(content: dict[str, Any], label: str) -> None:
    opaque = content.get("opaque") or []
    if opaque:
        raise MLOpsUsageError(
            f"{label} has a pickled column {opaque[0]['label']!r}, and unpickling runs code its "
            "writer chose: pass allow_pickle=True (%snapshot load --allow-pickle) only if you "
            "trust whoever wrote this store"
        )


def read_pickled(
    store: SnapshotStore, entry: dict[str, Any], *, verify: bool, label: str, allowed: bool
) -> Any:
    """Unpickle an opaque column, only when the caller allowed it (any store, local too)."""
    import pickle

    if not allowed:
        refuse_pickles({"opaque": [entry]}, label)
    key = object_key(entry["object"])
    where = f"object {key} (pickled column {entry['label']!r})"
    try:
        data = store.backend.read(key)
    except FileNotFoundError:
        raise SnapshotCorrupted(label, where, "missing") from None
    if verify and digest_bytes(data) != entry["object"]:
        raise SnapshotCorrupted(label, where, "its bytes do not hash to its id")
    return pickle.loads(data)


def load_path(
    store: SnapshotStore,
    manifest: dict[str, Any],
    *,
    verify: bool,
    label: str,
    target: Path | None,
    restore_root: Path,
    stat_cache: Path,
) -> Path:
    """Materialise a file or folder snapshot; an existing identical copy is reused."""
    content = manifest["content"]
    ours = target is None
    if target is None:
        name = safe_relpath(content["name"])  # manifests may come from a shared store
        if len(name.parts) != 1:
            raise MLOpsUsageError(f"refusing to restore {label} as {content['name']!r}")
        target = restore_root / label / name.parts[0]
    target = target.expanduser().resolve()
    if target.exists():
        cache = StatCache(stat_cache)
        try:
            same = matches(target, content, cache)
        finally:
            cache.close()
        if same:
            return target
        if not ours:
            raise MLOpsUsageError(
                f"{target} already exists and differs from {label}; remove it or choose "
                "another --to path"
            )
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    return materialise(store.backend, content, target, verify=verify, snapshot=label)


def load(
    store: SnapshotStore,
    ref: str,
    *,
    verify: bool = True,
    to: str | Path | None = None,
    restore_root: Path,
    stat_cache: Path,
    allow_pickle: bool = False,
    as_: str = "pandas",
    batches: bool = False,
) -> tuple[Resolved, dict[str, Any], Any]:
    if as_ not in LOAD_FORMS:
        raise MLOpsUsageError(f"cannot load as {as_!r}; use one of {', '.join(LOAD_FORMS)}")
    resolved = store.resolve(ref)
    manifest = store.manifest(resolved.id, resolved.ref)
    if manifest["content"]["kind"] == "dataframe":
        if to is not None:
            raise MLOpsUsageError(f"{resolved.ref} is a DataFrame; --to applies to file snapshots")
        value: Any
        if batches:
            value = iter_batches(store, manifest, verify=verify, label=resolved.ref)
        else:
            value = load_frame(
                store,
                manifest,
                verify=verify,
                label=resolved.ref,
                allow_pickle=allow_pickle,
                as_=as_,
            )
    elif batches or as_ != "pandas":
        raise MLOpsUsageError(
            f"{resolved.ref} is a {manifest['content']['kind']} snapshot; batches and --as "
            "apply to tables"
        )
    else:
        value = load_path(
            store,
            manifest,
            verify=verify,
            label=resolved.ref,
            target=Path(to) if to is not None else None,
            restore_root=restore_root,
            stat_cache=stat_cache,
        )
    return resolved, manifest, value
