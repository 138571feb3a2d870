"""``%snapshot gc``: sweep what no version uses, never what a save in flight is about to use.

gc takes the store lock alone (``flock`` on a folder, lease files on an object store: see
:mod:`.leases`), so it runs only while no save does; anything no version references is then a
leftover of a save that died or failed, and is reclaimed at once. Temp files are named after
their writer, so one whose process is alive is kept (a writer outside the lock, such as the
store's FORMAT file) and one of a dead process goes at once; a temp file gc cannot attribute
(another host, an older name) goes once it is older than ``TEMP_GRACE_S``. ``grace_s``
optionally keeps unreferenced objects younger than that too. A damaged version file stops gc:
it cannot know what that version needs.
"""

from __future__ import annotations

from ..errors import MLOpsUsageError
from .owners import alive
from .repository import SnapshotStore, manifest_key, object_key
from .results import GcReport
from .verify import object_ids

GRACE_S = 0.0
TEMP_GRACE_S = 3600.0


def _temp_is_orphan(backend_age: float, key: str) -> bool:
    verdict = alive(key.rsplit("/", 1)[-1].split(".", 1)[0])
    if verdict is not None:
        return not verdict
    return backend_age >= TEMP_GRACE_S


def collect(store: SnapshotStore, *, dry_run: bool, grace_s: float = GRACE_S) -> GcReport:
    backend = store.backend
    with backend.lock(exclusive=True):
        entries = store.scan()
        damaged = [e for e in entries if e.error is not None]
        if damaged:
            raise MLOpsUsageError(
                f"gc stopped: {damaged[0].error}; gc cannot tell what that version needs, so fix "
                "or delete that file first (%snapshot verify lists every damaged one)"
            )
        records = [e.record for e in entries if e.record is not None]
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
            try:
                size, age = backend.size(key), backend.age(key)
            except FileNotFoundError:  # a temp file its live writer just published
                continue
            sizes[key] = size
            if what == "temp files":
                keep = not _temp_is_orphan(age, key)
            else:
                keep = live or (grace_s > 0 and age < grace_s)
            if keep:
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
