"""The store layout: immutable objects and manifests, one exclusive-create file per version.

```
FORMAT                         {"format": 1, "hash": "blake3"}
objects/ab/cdef...             cells (Arrow IPC) and file blobs, named by content id, read-only
manifests/<snapshot id>.json   what a snapshot holds; named by the id of its content
refs/<name>/v000001.json       one version: snapshot id, provenance, tags; created exclusively
refs/<name>/v000001.removed.json  its tombstone once removed (rm, gc --keep-last): see tombstones
tmp/                           staging for atomic publishes (local stores), swept by gc
```

Objects are published before the manifest, and the manifest before the version, so a version
never points at missing data. The store is plain immutable files plus append-only refs; it can be
copied or mirrored, and nothing needs a database.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from typing import Any

from ..errors import MLOpsUsageError
from ..records import SNAPSHOT_MANIFESTS, SNAPSHOT_OBJECTS
from . import tombstones
from .errors import SnapshotCorrupted
from .hashing import HASH_NAME, STORE_FORMAT, digest_json
from .names import Ref, check_name, parse_ref
from .store import Backend, json_bytes, open_backend, read_json, write_json

FORMAT_KEY = "FORMAT"
MAX_VERSION_TRIES = 1000


def object_key(object_id: str) -> str:
    return f"{SNAPSHOT_OBJECTS}/{object_id[:2]}/{object_id[2:]}"


def manifest_key(snapshot_id: str) -> str:
    return f"{SNAPSHOT_MANIFESTS}/{snapshot_id}.json"


def version_key(name: str, version: int) -> str:
    return f"refs/{check_name(name)}/v{version:06d}.json"


@dataclass(frozen=True)
class Entry:
    """One version file as found: its record, or why it cannot be read (a damaged file)."""

    name: str
    version: int
    record: dict[str, Any] | None
    error: str | None = None
    problem: str = ""  # the short form of ``error``: what is wrong with the file

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def key(self) -> str:
        return version_key(self.name, self.version)


def _record_problem(data: bytes, name: str, version: int) -> tuple[dict[str, Any] | None, str]:
    """The record in a version file, or what is wrong with the file."""
    if not data.strip():
        return None, "empty"
    try:
        record = json.loads(data)
    except ValueError as exc:
        return None, f"not JSON ({exc})"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    snapshot = record.get("snapshot")
    if not (
        isinstance(snapshot, str)
        and len(snapshot) == 64
        and all(c in string.hexdigits for c in snapshot)
    ):
        return None, "no valid snapshot id"
    if record.get("name", name) != name or record.get("version", version) != version:
        return None, f"it names {record.get('name')!r} v{record.get('version')!r} instead"
    return record, ""


def content_id(manifest: dict[str, Any]) -> str:
    """The snapshot id: the digest of ``content`` (what defines the data; stats are not in it)."""
    return digest_json(manifest["content"])


@dataclass(frozen=True)
class Resolved:
    """A REF pinned down: the snapshot id, and the version it came from (when there is one)."""

    id: str
    name: str | None
    version: int | None

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}" if self.name else self.id[:12]


class SnapshotStore:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._manifests: dict[str, dict[str, Any]] = {}
        self._formatted = False  # FORMAT was seen: a save need not ask again

    @classmethod
    def open(cls, location: str) -> SnapshotStore:
        store = cls(open_backend(location))
        store._check_format()
        return store

    def _check_format(self) -> None:
        if self.backend.exists(FORMAT_KEY):
            self._formatted = True
            fmt = read_json(self.backend, FORMAT_KEY)
            if fmt.get("format") != STORE_FORMAT or fmt.get("hash") != HASH_NAME:
                raise MLOpsUsageError(
                    f"snapshot store {self.backend.location} has format {fmt}; this "
                    f"jupyter-mlops reads format {STORE_FORMAT} ({HASH_NAME}): upgrade it"
                )

    def ensure_format(self) -> None:
        if not self._formatted and not self.backend.exists(FORMAT_KEY):
            self.backend.create_exclusive(
                FORMAT_KEY, json_bytes({"format": STORE_FORMAT, "hash": HASH_NAME})
            )

    # --- versions -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted({key.split("/")[1] for key in self.backend.list("refs")})

    def versions(self, name: str) -> list[int]:
        """The live versions of ``name``: removed ones (see :mod:`.tombstones`) are left out."""
        numbers, removed = self.numbers(name)
        return [v for v in numbers if v not in removed]

    def numbers(self, name: str) -> tuple[list[int], set[int]]:
        """Every version number ``name`` was given, and the removed ones among them."""
        given: set[int] = set()
        removed: set[int] = set()
        for key in self.backend.list(f"refs/{check_name(name)}"):
            parsed = tombstones.version_number(key.rsplit("/", 1)[-1])
            if parsed is not None:
                (removed if parsed[1] else given).add(parsed[0])
        return sorted(given | removed), removed

    def record(self, name: str, version: int) -> dict[str, Any]:
        entry = self.entry(name, version)
        if entry.record is None:
            key = version_key(name, version)
            raise SnapshotCorrupted(entry.ref, f"version file {key}", entry.problem)
        return entry.record

    def entry(self, name: str, version: int) -> Entry:
        key = version_key(name, version)
        try:
            data = self.backend.read(key)
        except FileNotFoundError:
            return Entry(name, version, None, f"version file {key} is missing", "missing")
        record, problem = _record_problem(data, name, version)
        if record is None:
            return Entry(name, version, None, f"version file {key} is damaged: {problem}", problem)
        return Entry(name, version, record)

    def scan(self, name: str | None = None) -> list[Entry]:
        """Every version file, a damaged one as an entry with its error (lists never fail whole)."""
        names = [check_name(name)] if name is not None else self.names()
        return [self.entry(n, v) for n in names for v in self.versions(n)]

    def add_version(
        self, name: str, record: dict[str, Any], numbers: list[int] | None = None
    ) -> int:
        """Allocate the next version of ``name`` with an exclusive create; never overwrites.
        ``numbers``: the name's version numbers as the caller just listed them (a stale list
        only costs a retry: the create is exclusive)."""
        # A removed version's number is never reused.
        existing = self.numbers(name)[0] if numbers is None else numbers
        version = (existing[-1] if existing else 0) + 1
        for _ in range(MAX_VERSION_TRIES):
            record = {**record, "name": name, "version": version}
            if self.backend.create_exclusive(version_key(name, version), json_bytes(record)):
                return version
            version += 1
        raise MLOpsUsageError(f"could not allocate a version of {name!r}; too many writers")

    # --- manifests ----------------------------------------------------------------------------

    def put_manifest(self, manifest: dict[str, Any]) -> None:
        """Publish a manifest (the caller found none; one a concurrent save of the same content
        wrote meanwhile is equal, and replaced whole)."""
        write_json(self.backend, manifest_key(manifest["id"]), manifest)
        self._manifests[manifest["id"]] = manifest  # immutable: no need to read it back

    def manifest(self, snapshot_id: str, label: str | None = None) -> dict[str, Any]:
        """A manifest, checked against its own id (a damaged manifest is corruption too)."""
        cached = self._manifests.get(snapshot_id)
        if cached is not None:
            return cached
        key = manifest_key(snapshot_id)
        label = label or snapshot_id[:12]
        try:
            manifest: dict[str, Any] = json.loads(self.backend.read(key))
            ok = manifest.get("id") == snapshot_id and content_id(manifest) == snapshot_id
        except FileNotFoundError:
            raise SnapshotCorrupted(label, f"manifest {key}", "missing") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise SnapshotCorrupted(label, f"manifest {key}", f"unreadable: {exc}") from None
        if not ok:
            raise SnapshotCorrupted(label, f"manifest {key}", "content does not match its id")
        if manifest["content"].get("kind") == "dataframe":
            from .integrity import schema_problem

            problem = schema_problem(manifest)
            if problem:
                raise SnapshotCorrupted(label, f"manifest {key}", problem)
        self._manifests[snapshot_id] = manifest
        return manifest

    def manifest_ids(self) -> list[str]:
        return [
            key.rsplit("/", 1)[-1][: -len(".json")]
            for key in self.backend.list(SNAPSHOT_MANIFESTS)
            if key.endswith(".json")
        ]

    # --- references ---------------------------------------------------------------------------

    def resolve(self, text: object) -> Resolved:
        ref = parse_ref(text)
        if ref.name is not None:
            numbers, removed = self.numbers(ref.name)
            tombstones.refuse_removed(self.backend, ref.name, ref.version, numbers, removed)
            versions = [v for v in numbers if v not in removed]
            if versions:
                return self._pin(ref, versions)
            if ref.id_prefix is None or ref.version is not None:
                raise MLOpsUsageError(
                    f"no snapshot named {ref.name!r} in {self.backend.location}; see %snapshot list"
                )
        assert ref.id_prefix is not None
        return self._by_id_prefix(ref.id_prefix)

    def _pin(self, ref: Ref, versions: list[int]) -> Resolved:
        assert ref.name is not None
        version = versions[-1] if ref.version is None else ref.version
        if version not in versions:
            raise MLOpsUsageError(
                f"{ref.name} has no version v{version}; it has v{versions[0]}..v{versions[-1]}"
            )
        record = self.record(ref.name, version)
        return Resolved(record["snapshot"], ref.name, version)

    def _by_id_prefix(self, prefix: str) -> Resolved:
        matches = [i for i in self.manifest_ids() if i.startswith(prefix)]
        if not matches:
            raise MLOpsUsageError(f"no snapshot name or id starts with {prefix!r}")
        if len(matches) > 1:
            raise MLOpsUsageError(
                f"id prefix {prefix!r} is ambiguous ({len(matches)} snapshots); give more digits"
            )
        for entry in self.scan():
            if entry.record is not None and entry.record["snapshot"] == matches[0]:
                return Resolved(matches[0], entry.name, entry.version)
        tombstones.refuse_removed_id(self.backend, matches[0])
        return Resolved(matches[0], None, None)

    def all_records(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every version's record; a damaged version file raises (see :meth:`scan`)."""
        names = [check_name(name)] if name is not None else self.names()
        return [self.record(n, v) for n in names for v in self.versions(n)]
