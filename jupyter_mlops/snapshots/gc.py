"""``%snapshot gc``: sweep what no version uses, never what a save in flight is about to use.

gc takes the store lock alone (``flock`` on a folder, lease files on an object store: see
:mod:`.leases`), so it runs only while no save does; anything no live version references is then
a leftover of a save that died or failed, or the data of removed versions, and is reclaimed at
once. Temp files are named after their writer, so one whose process is alive is kept (a writer
outside the lock, such as the store's FORMAT file) and one of a dead process goes at once; a temp
file gc cannot attribute (another host, an older name) goes once it is older than
``TEMP_GRACE_S``. ``grace_s`` optionally keeps unreferenced objects younger than that too. A
damaged version file stops gc: it cannot know what that version needs. Small objects live in
packs (:mod:`.packs`): a pack goes once no live version references any of its objects, its index
first, so a kill leaves an orphan pack that the next gc removes; a pack some of whose objects are
still live is repacked (those objects are copied into a new pack, indexed, then the old one
goes), so gc frees exactly the bytes no version uses; a pack whose index cannot be read is kept.

With a keep policy (``--keep-last N``, :class:`.retention.KeepPolicy`) gc first marks the older
versions gone, under the same lock and before anything is deleted, so a kill at any moment leaves
every live version whole and a re-run finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..errors import MLOpsUsageError
from ..records import SNAPSHOT_MANIFESTS, SNAPSHOT_PACKS
from .errors import SnapshotCorrupted
from .owners import alive
from .packs import Pack, Packs
from .repository import SnapshotStore, object_key
from .results import GcReport, VersionVerdict
from .retention import KeepPolicy, Users, keys_of, mark
from .store import Backend

GRACE_S = 0.0
TEMP_GRACE_S = 3600.0


def _temp_is_orphan(backend_age: float, key: str) -> bool:
    verdict = alive(key.rsplit("/", 1)[-1].split(".", 1)[0])
    if verdict is not None:
        return not verdict
    return backend_age >= TEMP_GRACE_S


def _ref(record: dict[str, Any]) -> str:
    return f"{record['name']}@v{record['version']}"


def _apply(
    store: SnapshotStore,
    records: list[dict[str, Any]],
    policy: KeepPolicy,
    users: Users,
    dry_run: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[VersionVerdict]]:
    """(kept records, removed records, verdicts): tombstones published unless a dry run."""
    verdicts = policy.verdicts(records, users)
    gone = {v.ref for v in verdicts if v.removed}
    removed = [r for r in records if _ref(r) in gone]
    if not dry_run:
        for record in removed:
            mark(
                store,
                record["name"],
                record["version"],
                record["snapshot"],
                by=f"gc {policy.label}",
            )
        store.backend.sync()  # every tombstone is durable before any object goes
    return [r for r in records if _ref(r) not in gone], removed, verdicts


def collect(
    store: SnapshotStore,
    *,
    dry_run: bool,
    grace_s: float = GRACE_S,
    policy: KeepPolicy | None = None,
    users: Callable[[], Users] = Users,
) -> GcReport:
    backend = store.backend
    # Who uses what is read before the lock (no save waits on MLflow), and only when some name
    # has versions beyond the policy's window.
    beyond = policy is not None and any(
        len(store.versions(name)) > policy.keep_last for name in store.names()
    )
    known = users() if beyond else None
    with backend.lock(exclusive=True):
        entries = store.scan()
        damaged = [e for e in entries if e.error is not None]
        if damaged:
            raise MLOpsUsageError(
                f"gc stopped: {damaged[0].error}; gc cannot tell what that version needs, so fix "
                f"that file or remove the version (%snapshot rm {damaged[0].ref}) first "
                "(%snapshot verify lists every damaged one)"
            )
        records = [e.record for e in entries if e.record is not None]
        removed_records: list[dict[str, Any]] = []
        verdicts: list[VersionVerdict] = []
        if policy is not None:
            if known is None:  # a save since the look above may have pushed one out of the window
                known = users() if policy.verdicts(records, Users()) else Users()
            records, removed_records, verdicts = _apply(store, records, policy, known, dry_run)
        live: set[str] = set()
        by_name_keys: dict[str, set[str]] = {}
        for record in records:
            keys = keys_of(store, record["snapshot"], _ref(record))
            live |= keys
            by_name_keys.setdefault(record["name"], set()).update(keys)

        removed = {"objects": 0, SNAPSHOT_PACKS: 0, "manifests": 0, "temp files": 0}
        reclaimed = kept_bytes = kept = 0
        sizes: dict[str, int] = {}
        candidates = [
            *(("objects", key, key in live) for key in backend.list("objects")),
            *(("manifests", key, key in live) for key in backend.list(SNAPSHOT_MANIFESTS)),
            *(("temp files", key, False) for key in backend.list("tmp")),
        ]
        freed_by = _keys_of_removed(store, removed_records)  # before their manifests go
        for what, key, is_live in candidates:
            try:
                size, age = backend.size(key), backend.age(key)
            except FileNotFoundError:  # a temp file its live writer just published
                continue
            sizes[key] = size
            if what == "temp files":
                keep = not _temp_is_orphan(age, key)
            else:
                keep = is_live or (grace_s > 0 and age < grace_s)
            if keep:
                if what == "objects":
                    kept += 1
                    kept_bytes += size
                continue
            removed[what] += 1
            reclaimed += size
            if not dry_run:
                backend.delete(key)
        packs = backend.packs
        doomed: list[Pack] = []  # packs that go: dead ones, and partly dead ones once repacked
        for pack in [] if packs is None else packs.scan():
            slots = {object_key(i): slot for i, slot in pack.objects.items()}
            used = [key for key in slots if key in live]
            for key, slot in slots.items():
                sizes.setdefault(key, slot.length)
            live_bytes = sum(slots[key].length for key in used)
            kept += len(used)
            kept_bytes += live_bytes
            # One without an index (its save was killed before the index went up) holds nothing
            # any manifest can name; one whose index cannot be read is kept (gc cannot know).
            whole = bool(used) and len(used) == len(slots)
            if whole or pack.damaged or (grace_s > 0 and pack.age < grace_s):
                continue
            removed[SNAPSHOT_PACKS] += 1
            reclaimed += (pack.size or 0) - live_bytes
            doomed.append(pack)
        if doomed and not dry_run:
            assert packs is not None
            _repack(backend, packs, doomed, live)
    by_name = {
        name: (
            sum(r["name"] == name for r in records),
            sum(sizes.get(k, 0) for k in keys if not k.startswith(f"{SNAPSHOT_MANIFESTS}/")),
        )
        for name, keys in by_name_keys.items()
    }
    verdicts = [
        replace(v, bytes=sum(sizes.get(k, 0) for k in freed_by.get(v.ref, set()) - live))
        for v in verdicts
    ]
    return GcReport(
        dry_run,
        removed,
        reclaimed,
        kept,
        kept_bytes,
        len(records),
        by_name,
        policy.label if policy is not None else "",
        verdicts,
    )


def _repack(backend: Backend, packs: Packs, doomed: list[Pack], live: set[str]) -> None:
    """Remove ``doomed`` packs; the live objects of a partly dead one first go into new packs
    (written and indexed before any old one goes), so gc frees exactly the dead objects' bytes.

    A kill after the new packs leaves some objects in two packs, which is harmless (a load
    reads either); the next gc finds the old pack whole and live and keeps it."""
    for pack in doomed:
        wanted = {i: s for i, s in pack.objects.items() if object_key(i) in live}
        if not wanted or pack.size is None:
            continue
        data = packs.blobs.read_range(pack.key, 0, pack.size)
        for object_id, slot in wanted.items():
            packs.add(object_id, data[slot.offset : slot.offset + slot.length])
    packs.flush()
    backend.sync()  # the new packs' names are durable before an old pack goes
    for pack in doomed:
        if pack.index is not None:
            backend.delete(pack.index)  # the index first: a kill leaves an orphan pack
        backend.delete(pack.key)
    packs.forget()  # what moved is found again in the new indexes


def _keys_of_removed(store: SnapshotStore, removed: list[dict[str, Any]]) -> dict[str, set[str]]:
    found = {}
    for record in removed:
        try:
            found[_ref(record)] = keys_of(store, record["snapshot"], _ref(record))
        except SnapshotCorrupted:  # a damaged manifest frees what it frees; nothing to count
            found[_ref(record)] = set()
    return found
