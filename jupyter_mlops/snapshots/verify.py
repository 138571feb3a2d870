"""``%snapshot verify``: re-hash stored data against its ids, collecting every problem found.

Beyond the objects it checks what their ids do not cover: each version file, and each
manifest's schema and column details (types, bytes, stats), re-derived from the verified cells.
It never unpickles anything; pickled columns are listed as notes (loading them needs consent).
"""

from __future__ import annotations

import os
from typing import Any

from .cells import read_cell
from .errors import SnapshotCorrupted
from .hashing import digest_bytes, digest_file
from .integrity import cell_type_problem, details_problem, stored_schema
from .repository import Resolved, SnapshotStore, manifest_key, object_key
from .results import Problem, VerifyReport


def object_ids(manifest: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(object id, column name for cells / None for file blobs) of one manifest."""
    content = manifest["content"]
    if content["kind"] == "dataframe":
        cells = [(cell, c["name"]) for c in content["columns"] for cell in c["cells"]]
        return cells + [(entry["object"], None) for entry in content.get("opaque", [])]
    if content["kind"] == "file":
        return [(content["object"], None)]
    return [(e["object"], None) for e in content["entries"]]


def _check_object(store: SnapshotStore, object_id: str, column: str | None, label: str) -> int:
    if column is not None:
        read_cell(store.backend, object_id, column, verify=True, snapshot=label)
        return store.backend.size(object_key(object_id))
    key = object_key(object_id)
    local = store.backend.local_path(key)
    try:
        if local is not None:  # large files are hashed from a memory map, not read into memory
            found, size = digest_file(local), os.path.getsize(local)
        else:
            data = store.backend.read(key)
            found, size = digest_bytes(data), len(data)
    except FileNotFoundError:
        raise SnapshotCorrupted(label, f"object {key}", "missing") from None
    if found != object_id:
        raise SnapshotCorrupted(label, f"object {key}", "its bytes do not hash to its id")
    return size


def _check_frame_details(
    store: SnapshotStore, manifest: dict[str, Any], label: str, checked: set[str]
) -> int:
    """Re-derive each column's type, bytes and stats from its cells; returns bytes re-hashed."""
    import pyarrow as pa

    schema = stored_schema(manifest)
    where = f"manifest {manifest_key(manifest['id'])}"
    total = 0
    for i, column in enumerate(manifest["content"]["columns"]):
        name, chunks, stored = column["name"], [], 0
        for object_id in column["cells"]:
            fresh = object_id not in checked
            checked.add(object_id)
            cell = read_cell(store.backend, object_id, name, verify=fresh, snapshot=label)
            size = store.backend.size(object_key(object_id))
            stored += size
            total += size if fresh else 0
            chunks.extend(cell.chunks)
        field = schema.field(i)
        try:
            values = pa.chunked_array(chunks, type=chunks[0].type if chunks else field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            mixed = f"the cells of column {name!r} differ in type ({exc})"
            raise SnapshotCorrupted(label, "cells", mixed) from None
        problem = cell_type_problem(field, values) or details_problem(manifest, i, values, stored)
        if problem:
            raise SnapshotCorrupted(label, where, problem)
    return total


def totals_problem(store: SnapshotStore, manifest: dict[str, Any]) -> str | None:
    """Do the manifest's object count and bytes match the objects it names?"""
    ids = dict.fromkeys(object_id for object_id, _ in object_ids(manifest))
    try:
        stored = sum(store.backend.size(object_key(i)) for i in ids)
    except FileNotFoundError:
        return None  # a missing object is reported on its own
    if (manifest.get("objects"), manifest.get("bytes")) != (len(ids), stored):
        return (
            f"it says {manifest.get('objects')} objects of {manifest.get('bytes')} bytes, "
            f"its content names {len(ids)} of {stored}"
        )
    return None


def pickled_notes(manifest: dict[str, Any], label: str) -> list[str]:
    return [
        f"{label} has pickled column {entry['label']!r}: loading it needs allow_pickle=True"
        for entry in manifest["content"].get("opaque", [])
    ]


def verify(
    store: SnapshotStore, targets: list[Resolved], damaged: list[Problem] | None = None
) -> VerifyReport:
    problems: list[Problem] = list(damaged or [])
    notes: list[str] = []
    checked: set[str] = set()
    seen: set[str] = set()
    total = 0
    for target in targets:
        try:
            manifest = store.manifest(target.id, target.ref)
        except SnapshotCorrupted as exc:
            problems.append(Problem(exc.snapshot, exc.object, exc.problem))
            continue
        if target.id in seen:
            continue
        seen.add(target.id)
        notes += pickled_notes(manifest, target.ref)
        if manifest["content"]["kind"] == "dataframe":
            try:
                total += _check_frame_details(store, manifest, target.ref, checked)
            except SnapshotCorrupted as exc:
                problems.append(Problem(exc.snapshot, exc.object, exc.problem))
        for object_id, column in object_ids(manifest):
            if object_id in checked:
                continue
            checked.add(object_id)
            try:
                total += _check_object(store, object_id, column, target.ref)
            except SnapshotCorrupted as exc:
                problems.append(Problem(exc.snapshot, exc.object, exc.problem))
        problem = totals_problem(store, manifest)
        if problem:
            problems.append(Problem(target.ref, f"manifest {manifest_key(target.id)}", problem))
    snapshots = len(targets) + len(damaged or [])
    return VerifyReport(snapshots, len(checked), total, problems, notes)


def every_version(store: SnapshotStore) -> tuple[list[Resolved], list[Problem]]:
    """Every readable version, and a problem for each damaged version file."""
    targets, damaged = [], []
    for entry in store.scan():
        if entry.record is None:
            damaged.append(Problem(entry.ref, f"version file {entry.key}", entry.problem))
        else:
            targets.append(Resolved(entry.record["snapshot"], entry.name, entry.version))
    return targets, damaged
