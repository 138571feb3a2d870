"""Packs: many small objects in one object-store object, so a save is a few large PUTs.

On an object store each request costs a round trip and milliseconds of work on both sides, so
a save of hundreds of ~100-300 KB cells was bound by request count, not bytes. There, new objects
of a save (up to ``PACKED_MAX`` each; larger ones stay loose, one PUT each) are appended to an
open pack; a pack of ``PACK_BYTES`` is uploaded in one PUT (s3fs switches to a multipart upload
for large ones) and then its index, a small JSON object naming each object's offset and length:

```
packs/<pack id>                 the objects' bytes, back to back
pack-indexes/<pack id>.json     {"pack": id, "bytes": n, "objects": {object id: [offset, length]}}
```

The index is published only after its pack, and a save flushes its open pack and index before it
publishes the manifest that names those objects (``Backend.sync``): a save killed at any point
leaves at worst a pack without an index, which nothing can reference and gc removes. Loads find an
object by its id in the indexes (listed once, then again when an id is not found) and read it with
one ranged GET; an object not in any index is read loose, so stores written before packs (loose
``objects/`` only) keep loading. gc removes a pack whose objects no live version references
(it never rewrites a pack: one live object keeps its whole pack).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from ..records import SNAPSHOT_PACK_INDEXES, SNAPSHOT_PACKS

PACK_BYTES = 8 << 20  # an open pack is uploaded once it holds this many bytes (see README)
PACKED_MAX = 4 << 20  # larger objects are uploaded loose, one PUT each
UPLOADS_IN_FLIGHT = 2  # full packs queued for the background upload before ``add`` waits


def pack_key(pack_id: str) -> str:
    return f"{SNAPSHOT_PACKS}/{pack_id}"


def index_key(pack_id: str) -> str:
    return f"{SNAPSHOT_PACK_INDEXES}/{pack_id}.json"


def _id_of_index(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(".json")


@dataclass(frozen=True)
class Slot:
    """Where one object lives inside a pack."""

    pack: str  # the pack's key
    offset: int
    length: int


@dataclass(frozen=True)
class Pack:
    """One pack as gc sees it: its key, its index (None: killed before the index went up),
    the objects the index names, its size and age (None where the pack itself is missing)."""

    key: str
    index: str | None
    objects: dict[str, Slot] = field(default_factory=dict)  # object id -> slot
    size: int | None = None
    age: float = 0.0
    damaged: bool = False  # its index cannot be read: gc keeps it (it cannot know what it holds)


class Blobs(Protocol):
    """What packs need of an object store: whole PUTs, ranged GETs, listings."""

    def put_blob(self, key: str, parts: list[bytes | memoryview]) -> None:
        """Write ``key`` as the parts, in order (one blob)."""

    def read_range(self, key: str, start: int, end: int) -> bytes: ...

    def read_many(self, keys: list[str]) -> dict[str, bytes]: ...

    def list(self, prefix: str) -> list[str]: ...

    def listing(self, prefix: str) -> dict[str, tuple[int, float]]: ...


class Packs:
    """The packs of one object store: appends new objects to the open pack, uploads full ones,
    and finds an object's slot in the published indexes. Thread-safe."""

    def __init__(self, blobs: Blobs, uploaders: int = 1) -> None:
        self.blobs = blobs
        self._lock = threading.Lock()
        # Full packs are written by ``uploaders`` background threads while the next cells are
        # encoded; at most ``UPLOADS_IN_FLIGHT`` per thread wait (each holds a pack's bytes),
        # then ``add`` waits.
        self.uploaders = uploaders
        self._uploader: ThreadPoolExecutor | None = None
        self._uploads: deque[Future[None]] = deque()
        self._list_lock = threading.Lock()
        self._holders = 0  # store lock holdings in this process (see ``held``)
        self._holders_lock = threading.Lock()
        self._open: list[tuple[str, bytes | memoryview]] = []
        self._open_bytes = 0
        self._open_keys: set[str] = set()
        self._indexes: dict[str, dict[str, Slot]] = {}  # index key -> its slots (immutable)
        self._where: dict[str, Slot] = {}  # object id -> slot, from the last listing
        self._listed = False

    # --- writing ------------------------------------------------------------------------------

    def add(self, object_id: str, data: bytes | memoryview) -> None:
        """Append one object to the open pack; a full pack is uploaded in the background. ``data``
        is kept as it is until then (a read-only buffer: never copied)."""
        with self._lock:
            if object_id in self._open_keys:
                return
            self._open.append((object_id, data))
            self._open_keys.add(object_id)
            self._open_bytes += memoryview(data).nbytes
            full = self._take() if self._open_bytes >= PACK_BYTES else None
            if full:
                if self._uploader is None:
                    self._uploader = ThreadPoolExecutor(self.uploaders, "mlops-packs")
                self._uploads.append(self._uploader.submit(self._upload, full))
            waiting = len(self._uploads) > UPLOADS_IN_FLIGHT * self.uploaders
            oldest = self._uploads[0] if waiting else None
        if oldest is not None:
            oldest.result()  # back-pressure: the disk or network is slower than encoding
            with self._lock:
                if self._uploads and self._uploads[0] is oldest:
                    self._uploads.popleft()

    def flush(self) -> None:
        """Upload the open pack and its index, and wait for the packs uploading: every object
        added so far is then readable (an upload's error is raised here)."""
        with self._lock:
            full = self._take()
        if full:
            self._upload(full)
        self._wait()

    def discard(self) -> None:
        """Drop the open pack (a save that ended without naming its objects in a manifest),
        once the packs uploading are done (nothing is written after the store lock is let go)."""
        with self._lock:
            self._take()
        with contextlib.suppress(Exception):
            self._wait()

    def _wait(self) -> None:
        with self._lock:
            uploads, self._uploads = list(self._uploads), deque()
        errors = [f.exception() for f in uploads]
        for error in errors:
            if error is not None:
                raise error

    def _take(self) -> list[tuple[str, bytes | memoryview]]:
        taken, self._open, self._open_bytes, self._open_keys = self._open, [], 0, set()
        return taken

    def _upload(self, objects: list[tuple[str, bytes | memoryview]]) -> None:
        pack_id = uuid.uuid4().hex
        slots: dict[str, list[int]] = {}
        offset = 0
        for object_id, data in objects:
            size = memoryview(data).nbytes
            slots[object_id] = [offset, size]
            offset += size
        self.blobs.put_blob(pack_key(pack_id), [data for _, data in objects])
        index = {"pack": pack_id, "bytes": offset, "objects": slots}
        self.publish_index(pack_id, json.dumps(index, sort_keys=True).encode())
        where = _slots(pack_id, slots)
        with self._lock:
            self._indexes[index_key(pack_id)] = where
            if self._listed:
                self._where.update(where)

    def publish_index(self, pack_id: str, data: bytes) -> None:
        """The index goes up after its pack (a fault test stops a save right here)."""
        self.blobs.put_blob(index_key(pack_id), [data])

    # --- finding ------------------------------------------------------------------------------

    def forget(self) -> None:
        """The listing is stale (another process may have added packs, or gc removed some)."""
        with self._lock:
            self._listed = False
            self._where = {}

    def locate(self, object_id: str) -> Slot | None:
        """Where a published object is, from the indexes listed so far (listed once if never)."""
        if not self._listed:
            with self._list_lock:
                if not self._listed:  # another thread may have listed meanwhile
                    self._refresh()
        return self._where.get(object_id)

    def refresh(self) -> list[str]:
        """List the indexes again and read the ones not read before (indexes never change);
        the index keys listed."""
        with self._list_lock:
            return self._refresh()

    def _refresh(self) -> list[str]:
        listed = [k for k in self.blobs.list(SNAPSHOT_PACK_INDEXES) if k.endswith(".json")]
        self._read_indexes(k for k in listed if k not in self._indexes)
        where: dict[str, Slot] = {}
        for key in listed:
            where.update(self._indexes.get(key, {}))
        with self._lock:
            self._where, self._listed = where, True
        return listed

    def _read_indexes(self, keys: Iterable[str]) -> None:
        wanted = list(keys)
        if not wanted:
            return
        for key, data in self.blobs.read_many(wanted).items():
            slots = _parse_index(data)
            if slots is not None:
                with self._lock:
                    self._indexes[key] = _slots(_id_of_index(key), slots)

    def read_or_loose(self, object_id: str, loose: Callable[[], bytes]) -> bytes:
        """An object's bytes from its pack, else ``loose()`` (a large object, or one stored
        before packs); an object in neither is looked for once more in the indexes listed again
        (another process may have packed it since), then ``loose``'s FileNotFoundError is raised."""
        data = self.read(object_id)
        if data is not None:
            return data
        try:
            return loose()
        except FileNotFoundError:
            self.refresh()
            data = self.read(object_id)
            if data is None:
                raise
            return data

    @contextlib.contextmanager
    def held(self, reset: Callable[[], None]) -> Iterator[None]:
        """While the store lock is held in this process: the first holder lists the indexes
        afresh (other processes may have added or removed packs); when the last one lets go, the
        open pack is dropped (objects no manifest names: a failed save) and ``reset`` clears
        what the backend knew about this holding."""
        with self._holders_lock:
            self._holders += 1
            if self._holders == 1:
                self.forget()
        try:
            yield
        finally:
            with self._holders_lock:
                self._holders -= 1
                if self._holders == 0:
                    self.discard()
                    reset()

    def read(self, object_id: str) -> bytes | None:
        """An object's bytes from its pack (None: in no pack). A pack gc removed since the
        listing is listed again."""
        for attempt in range(2):
            slot = self.locate(object_id)
            if slot is None:
                return None
            try:
                return self.blobs.read_range(slot.pack, slot.offset, slot.offset + slot.length)
            except FileNotFoundError:
                if attempt:
                    raise
                self.refresh()
        return None

    # --- gc -----------------------------------------------------------------------------------

    def scan(self) -> list[Pack]:
        """Every pack and index: gc's view (orphan packs have no index)."""
        indexes = {_id_of_index(k): k for k in self.refresh()}
        data = self.blobs.listing(SNAPSHOT_PACKS)
        now = time.time()
        found = []
        for pack_id in sorted({k.rsplit("/", 1)[-1] for k in data} | set(indexes)):
            key = pack_key(pack_id)
            index = indexes.get(pack_id)
            slots = self._indexes.get(index) if index else {}
            size, modified = data.get(key, (None, now))
            found.append(Pack(key, index, dict(slots or {}), size, now - modified, slots is None))
        return found

    def dropped(self, pack: Pack) -> None:
        """gc removed ``pack``: its objects are no longer found."""
        with self._lock:
            if pack.index:
                self._indexes.pop(pack.index, None)
            for object_id in pack.objects:
                self._where.pop(object_id, None)


def _parse_index(data: bytes) -> dict[str, list[int]] | None:
    try:
        index = json.loads(data)
        slots = index["objects"]
        ok = isinstance(slots, dict) and all(
            isinstance(v, list) and len(v) == 2 and all(isinstance(n, int) for n in v)
            for v in slots.values()
        )
    except (ValueError, KeyError, TypeError):
        return None
    return slots if ok else None


def _slots(pack_id: str, slots: dict[str, list[int]]) -> dict[str, Slot]:
    key = pack_key(pack_id)
    return {i: Slot(key, offset, length) for i, (offset, length) in slots.items()}
