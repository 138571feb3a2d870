"""``%snapshot gc``: sweep what no version uses, never what a write in flight is about to use.

Marks from every version (all are kept: a version is never removed implicitly). Sweeps objects
and manifests that nothing references and that are older than a grace period, plus stale temp
files. Local stores also take the store lock exclusively, so gc waits for running saves (which
hold it shared); object stores rely on the grace period alone.
"""

from __future__ import annotations

from .repository import SnapshotStore, manifest_key, object_key
from .results import GcReport
from .verify import object_ids

GRACE_S = 3600.0


def collect(store: SnapshotStore, *, dry_run: bool, grace_s: float = GRACE_S) -> GcReport:
    backend = store.backend
    with backend.lock(exclusive=True):
        records = store.all_records()
        live_manifests = {r["snapshot"] for r in records}
        live_objects: set[str] = set()
        by_name_objects: dict[str, set[str]] = {}
        for record in records:
            manifest = store.manifest(record["snapshot"], f"{record['name']}@v{record['version']}")
            objects = {object_key(o) for o, _ in object_ids(manifest)}
            live_objects |= objects
            by_name_objects.setdefault(record["name"], set()).update(objects)

        removed = {"objects": 0, "manifests": 0, "temp files": 0}
        reclaimed = kept_bytes = kept = 0
        sizes: dict[str, int] = {}
        live_manifest_keys = {manifest_key(m) for m in live_manifests}
        candidates = [
            *(("objects", key, key in live_objects) for key in backend.list("objects")),
            *(("manifests", key, key in live_manifest_keys) for key in backend.list("manifests")),
            *(("temp files", key, False) for key in backend.list("tmp")),
        ]
        for what, key, live in candidates:
            size = backend.size(key)
            sizes[key] = size
            if live or backend.age(key) < grace_s:
                if what == "objects":
                    kept += 1
                    kept_bytes += size
                continue
            removed[what] += 1
            reclaimed += size
            if not dry_run:
                backend.delete(key)
    by_name = {
        name: (
            sum(r["name"] == name for r in records),
            sum(sizes.get(k, 0) for k in keys),
        )
        for name, keys in by_name_objects.items()
    }
    return GcReport(dry_run, removed, reclaimed, kept, kept_bytes, len(records), by_name)
