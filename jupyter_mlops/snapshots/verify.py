"""``%snapshot verify``: re-hash stored data against its ids, collecting every problem found."""

from __future__ import annotations

import os
from typing import Any

from .cells import read_cell
from .errors import SnapshotCorrupted
from .hashing import digest_bytes, digest_file
from .repository import Resolved, SnapshotStore, object_key
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


def verify(store: SnapshotStore, targets: list[Resolved]) -> VerifyReport:
    problems: list[Problem] = []
    checked: set[str] = set()
    total = 0
    for target in targets:
        try:
            manifest = store.manifest(target.id, target.ref)
        except SnapshotCorrupted as exc:
            problems.append(Problem(exc.snapshot, exc.object, exc.problem))
            continue
        for object_id, column in object_ids(manifest):
            if object_id in checked:
                continue
            checked.add(object_id)
            try:
                total += _check_object(store, object_id, column, target.ref)
            except SnapshotCorrupted as exc:
                problems.append(Problem(exc.snapshot, exc.object, exc.problem))
    return VerifyReport(len(targets), len(checked), total, problems)


def every_version(store: SnapshotStore) -> list[Resolved]:
    return [
        Resolved(record["snapshot"], record["name"], record["version"])
        for record in store.all_records()
    ]
