"""Retention: ``%snapshot rm NAME@vN`` and the keep policy of ``%snapshot gc --keep-last N``.

Removing a version publishes its tombstone (:mod:`.tombstones`); the version file and the
manifest are never edited, and ``gc`` later reclaims what only removed versions used. A version
that an MLflow run (a dataset input carrying our id or digest) or a registered model version (the
``%register`` snapshot tags) uses is never removed without ``force``: who uses what is read from
MLflow once per command (deleted runs count, since MLflow can restore them).
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import records
from ..errors import MLOpsError, MLOpsNotFound, MLOpsUsageError
from . import tombstones
from .errors import SnapshotCorrupted
from .names import parse_ref
from .provenance import now
from .repository import SnapshotStore, manifest_key, object_key
from .results import VersionVerdict, human_bytes
from .store import json_bytes
from .verify import object_ids

if TYPE_CHECKING:
    from ..config import Settings

SHOWN_USERS = 3  # a refusal names this many runs/models, then counts the rest
PAGE = 1000


# --- who uses a snapshot ------------------------------------------------------------------------


@dataclass
class Users:
    """Who uses which snapshot: labels such as ``run 1a2b3c4d (fit)`` or ``model clf/2``."""

    by_ref: dict[str, list[str]] = field(default_factory=dict)
    by_id: dict[str, list[str]] = field(default_factory=dict)  # full ids, and MLflow digests

    def add(self, label: str, ref: str | None, snapshot_id: str | None) -> None:
        if ref:
            self.by_ref.setdefault(ref, []).append(label)
        if snapshot_id:
            self.by_id.setdefault(snapshot_id, []).append(label)

    def of(self, ref: str, snapshot_id: str | None) -> list[str]:
        """Every user of version ``ref``: by its REF, or by its content (id or digest)."""
        found = list(self.by_ref.get(ref, []))
        if snapshot_id:
            found += self.by_id.get(snapshot_id, [])
            found += self.by_id.get(records.mlflow_digest(snapshot_id), [])
        return list(dict.fromkeys(found))


def summary(users: list[str]) -> str:
    shown = ", ".join(users[:SHOWN_USERS])
    rest = len(users) - SHOWN_USERS
    return f"{shown} and {rest} more" if rest > 0 else shown


def _pages(search: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
    token = None
    while True:
        page = search(*args, page_token=token, **kwargs)
        yield from page
        token = page.token
        if not token:
            return


def who_uses(settings: Settings) -> Users:
    """Every run's snapshot inputs and every model version's snapshot tags, read from MLflow.

    A store not created yet has no users. A store that cannot be read is an error: without it
    nothing can be removed safely (``rm --force`` still can).
    """
    from mlflow.entities import ViewType

    from ..tracking.query import existing_client

    users = Users()
    try:
        client = existing_client(settings)
        if client is None:
            return users
        experiments = [
            e.experiment_id
            for e in _pages(client.search_experiments, view_type=ViewType.ALL, max_results=PAGE)
        ]
        runs = _pages(client.search_runs, experiments, run_view_type=ViewType.ALL, max_results=PAGE)
        for run in runs if experiments else []:
            deleted = " deleted" if run.info.lifecycle_stage == "deleted" else ""
            label = f"run {run.info.run_id[:8]} ({run.info.run_name}{deleted})"
            for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
                tags = {t.key: t.value for t in dataset_input.tags}
                users.add(label, tags.get(records.INPUT_TAG_REF), tags.get(records.INPUT_TAG_ID))
                users.add(label, None, dataset_input.dataset.digest)
        for version in _pages(client.search_model_versions, max_results=PAGE):
            label = f"model {version.name}/{version.version}"
            refs, ids = records.tag_snapshots(version)
            for ref in refs:
                users.add(label, ref, None)
            for snapshot_id in ids:
                users.add(label, None, snapshot_id)
    except MLOpsError:
        raise
    except Exception as exc:  # any failure to read: nobody can tell what is safe to remove
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MLOpsUsageError(
            f"cannot tell which runs and models use snapshots: the tracking store "
            f"{settings.tracking_uri} answered {first!r}; fix it, or use rm --force"
        ) from None
    return users


# --- the keep policy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeepPolicy:
    """Keep the last ``keep_last`` versions of every name; older ones go unless used (or tagged)."""

    keep_last: int
    keep_tagged: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.keep_last, bool) or not isinstance(self.keep_last, int):
            raise MLOpsUsageError(f"--keep-last {self.keep_last!r}: give a whole number >= 1")
        if self.keep_last < 1:
            raise MLOpsUsageError(
                f"--keep-last {self.keep_last}: keep at least 1 version per name "
                "(to drop one version, use %snapshot rm NAME@vN)"
            )

    @property
    def label(self) -> str:
        return f"--keep-last {self.keep_last}" + (" --keep-tagged" if self.keep_tagged else "")

    def verdicts(self, versions: list[dict[str, Any]], users: Users) -> list[VersionVerdict]:
        """A verdict for each version beyond the last ``keep_last`` of its name, oldest first."""
        by_name: dict[str, list[dict[str, Any]]] = {}
        for record in sorted(versions, key=lambda r: (r["name"], r["version"])):
            by_name.setdefault(record["name"], []).append(record)
        found = []
        for name, older in by_name.items():
            for record in older[: -self.keep_last]:
                ref = f"{name}@v{record['version']}"
                used = users.of(ref, record["snapshot"])
                tags = record.get("tags") or {}
                if used:
                    found.append(VersionVerdict(ref, False, f"used by {summary(used)}"))
                elif self.keep_tagged and tags:
                    shown = ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))
                    found.append(VersionVerdict(ref, False, f"tagged ({shown})"))
                else:
                    found.append(VersionVerdict(ref, True, f"beyond the last {self.keep_last}"))
        return found


# --- marking versions gone ------------------------------------------------------------------------


def mark(
    store: SnapshotStore, name: str, version: int, snapshot_id: str | None, **extra: Any
) -> bool:
    """Publish the tombstone of ``name@v<version>``; False when it was already removed."""
    try:
        user: str | None = getpass.getuser()
    except (KeyError, OSError):
        user = None
    record = {
        "name": name,
        "version": version,
        "snapshot": snapshot_id,
        "removed": now(),
        "user": user,
        "host": socket.gethostname(),
        **extra,
    }
    return store.backend.create_exclusive(tombstones.removal_key(name, version), json_bytes(record))


def keys_of(store: SnapshotStore, snapshot_id: str, label: str) -> set[str]:
    """The store keys a snapshot uses: its manifest and every object it names."""
    manifest = store.manifest(snapshot_id, label)
    return {manifest_key(snapshot_id)} | {object_key(o) for o, _ in object_ids(manifest)}


def live_keys(store: SnapshotStore) -> set[str]:
    """The keys every live, readable version uses (damaged ones are left to verify and gc)."""
    keys: set[str] = set()
    for entry in store.scan():
        if entry.record is not None:
            try:
                keys |= keys_of(store, entry.record["snapshot"], entry.ref)
            except SnapshotCorrupted:
                continue
    return keys


def freed_bytes(store: SnapshotStore, keys: set[str], kept: set[str]) -> int:
    total = 0
    for key in keys - kept:
        try:
            total += store.backend.size(key)
        except FileNotFoundError:
            continue
    return total


@dataclass(frozen=True)
class Removal:
    """One version marked gone by ``%snapshot rm``; the next ``%snapshot gc`` reclaims its data."""

    ref: str
    id: str | None  # None when its version file was damaged
    removed_at: str
    by: str
    used_by: list[str]  # the runs and models that used it (a forced removal)
    reclaimable_bytes: int  # what the next gc frees: bytes no remaining version uses
    already: bool = False  # it had been removed before; nothing changed

    def __repr__(self) -> str:
        if self.already:
            return f"Snapshot {self.ref} was already removed by {self.by} at {self.removed_at}"
        lines = [f"Snapshot {self.ref} removed at {self.removed_at}"]
        if self.id:
            lines.append(f"  id      {self.id[:16]}")
        lines.append(
            f"  frees   {human_bytes(self.reclaimable_bytes)} at the next %snapshot gc "
            "(data no remaining version uses)"
        )
        if self.used_by:
            lines.append(f"  forced  still used by {summary(self.used_by)}")
        return "\n".join(lines)


def _one_version(text: str) -> tuple[str, int]:
    ref = parse_ref(text)
    _, at, selector = text.strip().partition("@")
    if ref.name is None or ref.version is None or not at or selector == "latest":
        name = ref.name or "NAME"
        raise MLOpsUsageError(
            f"%snapshot rm removes one version: give {name}@vN (%snapshot list {name} shows "
            "them), or keep the newest N of every name with %snapshot gc --keep-last N"
        )
    return ref.name, ref.version


def remove(store: SnapshotStore, text: str, *, force: bool, users: Callable[[], Users]) -> Removal:
    """Mark ``NAME@vN`` gone, unless a run or a model uses it and ``force`` is not given."""
    name, version = _one_version(text)
    ref = f"{name}@v{version}"
    numbers, removed = store.numbers(name)
    if not numbers:
        raise MLOpsNotFound(f"no snapshot named {name!r} in {store.backend.location}")
    if version not in numbers:
        raise MLOpsNotFound(
            f"{name} has no version v{version}; it has v{numbers[0]}..v{numbers[-1]}"
        )
    if version in removed:
        return _already(store, name, version)
    entry = store.entry(name, version)
    snapshot_id = entry.record["snapshot"] if entry.record is not None else None
    try:
        used = users().of(ref, snapshot_id)
    except MLOpsError:  # the tracking store cannot be read: only --force goes on without it
        if not force:
            raise
        used = []
    if used and not force:
        raise MLOpsUsageError(
            f"{ref} is used by {summary(used)}; removing it would leave them pointing at data "
            "gc deletes: pass --force to remove it anyway"
        )
    by = "rm --force" if force else "rm"
    with store.backend.lock(exclusive=True):  # no save reuses this version while it goes
        if not mark(store, name, version, snapshot_id, by=by, used_by=used):
            return _already(store, name, version)
        freed = 0
        if snapshot_id is not None:
            try:
                freed = freed_bytes(store, keys_of(store, snapshot_id, ref), live_keys(store))
            except SnapshotCorrupted:
                freed = 0
    record = tombstones.read(store.backend, name, version)
    return Removal(ref, snapshot_id, str(record.get("removed", "")), by, used, freed)


def _already(store: SnapshotStore, name: str, version: int) -> Removal:
    record = tombstones.read(store.backend, name, version)
    return Removal(
        f"{name}@v{version}",
        record.get("snapshot"),
        str(record.get("removed") or "an unknown time"),
        str(record.get("by") or "rm"),
        list(record.get("used_by") or []),
        0,
        already=True,
    )
