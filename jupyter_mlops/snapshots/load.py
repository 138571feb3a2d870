"""The read path: decode the cells of a snapshot, re-hash each one, rebuild the exact frame.

Pickled (opaque) columns are never unpickled unless the caller passes ``allow_pickle=True``:
unpickling runs whatever code the snapshot's writer chose, so it is an explicit opt-in for every
store, local ones included. The Jupyter server never passes it.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MLOpsUsageError
from .cells import read_cell
from .errors import SnapshotCorrupted
from .files import StatCache, matches, materialise, safe_relpath
from .frames import to_pandas
from .hashing import digest_bytes
from .integrity import cell_type_problem, stored_schema
from .progress import Progress
from .repository import Resolved, SnapshotStore, manifest_key, object_key
from .save import WORKERS

if TYPE_CHECKING:
    import pandas as pd


def load_frame(
    store: SnapshotStore,
    manifest: dict[str, Any],
    *,
    verify: bool,
    label: str,
    allow_pickle: bool = False,
) -> pd.DataFrame:
    import pyarrow as pa

    content = manifest["content"]
    if not allow_pickle:
        refuse_pickles(content, label)
    schema = stored_schema(manifest)  # checked against the content by store.manifest
    tasks = [(c["name"], object_id) for c in content["columns"] for object_id in c["cells"]]

    def read(task: tuple[str, str]) -> pa.ChunkedArray:
        name, object_id = task
        return read_cell(store.backend, object_id, name, verify=verify, snapshot=label)

    with Progress(len(tasks), f"load {label}") as progress, ThreadPoolExecutor(WORKERS) as pool:
        decoded: dict[str, list[Any]] = {c["name"]: [] for c in content["columns"]}
        for (name, _), column in zip(tasks, pool.map(read, tasks), strict=True):
            decoded[name].extend(column.chunks)
            progress.advance()
    arrays = []
    for field in schema:
        try:
            column = pa.chunked_array(decoded[field.name], type=decoded_type(field, decoded))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            mixed = f"the cells of column {field.name!r} differ in type ({exc})"
            raise SnapshotCorrupted(label, "cells", mixed) from None
        problem = cell_type_problem(field, column)
        if problem:
            raise SnapshotCorrupted(label, f"manifest {manifest_key(manifest['id'])}", problem)
        arrays.append(column)
    table = pa.Table.from_arrays(arrays, schema=schema)
    if table.num_columns and table.num_rows != content["rows"]:
        problem = f"cells hold {table.num_rows} rows, the manifest says {content['rows']}"
        raise SnapshotCorrupted(label, "cells", problem)
    df = to_pandas(table, content["restore"])
    for entry in sorted(content.get("opaque", []), key=lambda e: e["position"]):
        column = read_pickled(store, entry, verify=verify, label=label, allowed=allow_pickle)
        if df.shape[1] == 0:
            # Arrow cannot carry rows without columns: take the index the pickle carries.
            df = df.reindex(column.index)
        df.insert(entry["position"], column.name, column.array)
    return df


def decoded_type(field: Any, decoded: dict[str, list[Any]]) -> Any:
    """The type the decoded cells of a column have (the schema's when it has no cells)."""
    chunks = decoded[field.name]
    return chunks[0].type if chunks else field.type


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
) -> tuple[Resolved, dict[str, Any], Any]:
    resolved = store.resolve(ref)
    manifest = store.manifest(resolved.id, resolved.ref)
    if manifest["content"]["kind"] == "dataframe":
        if to is not None:
            raise MLOpsUsageError(f"{resolved.ref} is a DataFrame; --to applies to file snapshots")
        value: Any = load_frame(
            store, manifest, verify=verify, label=resolved.ref, allow_pickle=allow_pickle
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
