"""Where snapshot bytes live: object store backends, registered by URL scheme.

A backend stores immutable blobs under slash-separated keys. Every publish is atomic (a reader
sees the whole blob or nothing), and ``create_exclusive`` fails rather than overwrite, which is
what version allocation relies on. The local backend writes a temp file, fsyncs it and publishes
it with a no-clobber ``os.link``; the fsspec backend (any URL: ``s3://``, ``gs://``, ``memory://``)
uses the filesystem's exclusive-create mode where it has one.

Both have a store lock that saves share and gc takes alone (``flock`` locally, lease files on
object stores, see :mod:`.leases`), and both let gc tell a dead writer's leftovers from a live
one's: temp files are named after their writer (:mod:`.owners`).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from ..config import is_url
from ..errors import MLOpsUsageError
from ..records import SNAPSHOT_MANIFESTS, SNAPSHOT_OBJECTS
from . import leases
from .owners import my_tag
from .packs import PACKED_MAX, Packs, Slot


class Backend(Protocol):
    location: str
    # True where asking whether an object exists costs a round trip more than writing it with
    # a conditional create (S3): a save then writes new objects blind and asks ``kept`` after.
    blind_writes: bool

    @property
    def packs(self) -> Packs | None:
        """Where small objects are packed together (object stores, see :mod:`.packs`); None:
        every object is loose."""
        ...

    def read(self, key: str) -> bytes: ...

    def local_path(self, key: str) -> str | None: ...

    def writer(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def create_exclusive(self, key: str, data: bytes) -> bool: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def age(self, key: str) -> float: ...

    def touch(self, key: str) -> None: ...

    def kept(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def url(self, key: str) -> str: ...

    def sync(self) -> None: ...

    def lock(self, exclusive: bool) -> contextlib.AbstractContextManager[None]: ...


BACKENDS: dict[str, Callable[[str], Backend]] = {}


OBJECTS = f"{SNAPSHOT_OBJECTS}/"  # where objects live (repository.object_key): only they are packed
IMMUTABLE = (OBJECTS, f"{SNAPSHOT_MANIFESTS}/")  # never rewritten once published


def register(scheme: str) -> Callable[[Callable[[str], Backend]], Callable[[str], Backend]]:
    def add(factory: Callable[[str], Backend]) -> Callable[[str], Backend]:
        BACKENDS[scheme] = factory
        return factory

    return add


def open_backend(location: str) -> Backend:
    """The backend for a folder path or URL; a scheme without its own backend goes to fsspec."""
    scheme = location.split("://", 1)[0] if is_url(location) else ""
    if scheme == "file":
        location, scheme = location[len("file://") :], ""
    factory = BACKENDS.get(scheme) or BACKENDS["*"]
    return factory(location)


@register("")
class LocalBackend:
    """A folder on a local filesystem (not NFS/SMB: ``flock`` and ``link`` are unreliable there).

    New objects up to ``PACKED_MAX`` go into packs (see :mod:`.packs`), as on S3: a save writes
    and fsyncs a few 8 MB files instead of one file per cell (a 2M-row frame has ~800 cells, and
    their creation, fsync and link cost more than encoding them: measured in
    ``bench_snapshots.py``). Loose objects (larger ones, and stores written before packs) keep
    loading, and a packed object is read with one ``pread``.
    """

    blind_writes = False

    def __init__(self, location: str, *, pack: bool = True) -> None:
        self.root = Path(location)
        self.location = str(self.root)
        self._dirty_dirs: set[Path] = set()
        self.packs: Packs | None = Packs(self) if pack else None
        self._fresh: dict[str, int] = {}  # objects added to the open pack -> size

    def _path(self, key: str) -> Path:
        return self.root / key

    def _slot(self, key: str) -> Slot | None:
        if self.packs is None or not key.startswith(OBJECTS):
            return None
        return self.packs.locate(_object_id(key))

    def read(self, key: str) -> bytes:
        path = self._path(key)
        if self.packs is None or not key.startswith(OBJECTS):
            return path.read_bytes()
        return self.packs.read_or_loose(_object_id(key), path.read_bytes)

    def local_path(self, key: str) -> str | None:
        """The file holding ``key`` whole; None for a packed object (read it with ``read``)."""
        path = self._path(key)
        if key.startswith(OBJECTS) and self._slot(key) is not None and not path.exists():
            return None
        return str(path)

    def _tmp(self) -> Path:
        return self.root / "tmp" / f"{my_tag()}.{uuid.uuid4().hex}.part"

    @staticmethod
    def _create(tmp: Path) -> IO[bytes]:
        """Open a new temp file for writing (its folder made on first use, or after gc)."""
        try:
            return open(tmp, "xb")
        except FileNotFoundError:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            return open(tmp, "xb")

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        """Write ``key`` atomically; if it already exists the (equal) existing blob is kept.
        A small object goes into the open pack: readable once ``sync`` has written it."""
        if self.packs is None or not key.startswith(OBJECTS):
            with self._loose_writer(key) as fh:
                yield fh
            return
        with contextlib.ExitStack() as stack:
            spill = _Spill(lambda: stack.enter_context(self._loose_writer(key)))
            yield spill  # type: ignore[misc]  # a file-like object that only writes
            if spill.loose is None:
                data = spill.value()
                self._fresh[key] = memoryview(data).nbytes
                self.packs.add(_object_id(key), data)

    @contextlib.contextmanager
    def _loose_writer(self, key: str) -> Iterator[IO[bytes]]:
        tmp = self._tmp()
        try:
            with self._create(tmp) as fh:
                yield fh
                fh.flush()
                os.fchmod(fh.fileno(), 0o444)
                os.fsync(fh.fileno())
            self._publish(tmp, self._path(key), exclusive=False)
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _link(tmp: Path, final: Path) -> None:
        """Hard-link ``tmp`` as ``final`` (its folder made on first use)."""
        try:
            os.link(tmp, final)
        except FileNotFoundError:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.link(tmp, final)

    def _publish(self, tmp: Path, final: Path, *, exclusive: bool) -> bool:
        try:
            self._link(tmp, final)
        except FileExistsError:
            if exclusive:
                return False
        except OSError as exc:  # a filesystem without hard links
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            final.parent.mkdir(parents=True, exist_ok=True)
            if exclusive:
                try:
                    fd = os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o444)
                except FileExistsError:
                    return False
                with os.fdopen(fd, "wb") as fh:
                    fh.write(tmp.read_bytes())
                    os.fsync(fh.fileno())
            else:
                os.replace(tmp, final)
        self._dirty_dirs.add(final.parent)
        return True

    def create_exclusive(self, key: str, data: bytes) -> bool:
        tmp = self._tmp()
        try:
            with self._create(tmp) as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), 0o444)
                os.fsync(fh.fileno())
            created = self._publish(tmp, self._path(key), exclusive=True)
        finally:
            tmp.unlink(missing_ok=True)
        self.sync()
        return created

    def exists(self, key: str) -> bool:
        if key in self._fresh or self._slot(key) is not None:
            return True
        # A stat on the joined text: asked once per cell, and pathlib's objects cost more GIL
        # time than the stat itself (measured).
        return os.path.exists(os.path.join(self.location, key))

    def size(self, key: str) -> int:
        fresh = self._fresh.get(key)
        if fresh is not None:
            return fresh
        slot = self._slot(key)
        return slot.length if slot is not None else self._path(key).stat().st_size

    def age(self, key: str) -> float:
        return time.time() - self._path(key).stat().st_mtime

    def touch(self, key: str) -> None:
        slot = self._slot(key)
        with contextlib.suppress(OSError):
            os.utime(self._path(slot.pack if slot is not None else key))

    def kept(self, key: str) -> bool:
        return False  # blind_writes is off: a save asks exists() first

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            str(Path(folder, name).relative_to(self.root))
            for folder, _, names in os.walk(base)
            for name in names
        )

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str) -> str:
        return self._path(key).resolve().as_uri()

    def sync(self) -> None:
        """Write the open pack and its index, then make published names durable: fsync every
        folder a publish added a name to."""
        if self.packs is not None:
            self.packs.flush()
            self._fresh.clear()
        for folder in self._dirty_dirs:
            with contextlib.suppress(OSError):
                fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self._dirty_dirs.clear()

    @contextlib.contextmanager
    def lock(self, exclusive: bool) -> Iterator[None]:
        """Writers share the store lock; gc takes it alone, so it never sweeps a write in flight."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                with self.packs.held(self._fresh.clear) if self.packs else contextlib.nullcontext():
                    yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # --- what packs need (see packs.Blobs) ----------------------------------------------------

    def put_blob(self, key: str, parts: builtins.list[bytes | memoryview]) -> None:
        with self._loose_writer(key) as fh:
            fh.writelines(parts)  # each part straight to the file, never joined in memory

    def read_range(self, key: str, start: int, end: int) -> bytes:
        with open(self._path(key), "rb") as fh:
            data = os.pread(fh.fileno(), end - start, start)
        if len(data) != end - start:
            raise FileNotFoundError(f"{self._path(key)} holds fewer bytes than its index says")
        return data

    def read_many(self, keys: builtins.list[str]) -> dict[str, bytes]:
        found = {}
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                found[key] = self._path(key).read_bytes()
        return found

    def listing(self, prefix: str) -> dict[str, tuple[int, float]]:
        listed = {}
        for key in self.list(prefix):
            with contextlib.suppress(FileNotFoundError):
                stat = self._path(key).stat()
                listed[key] = (stat.st_size, stat.st_mtime)
        return listed


@register("*")
class FsspecBackend:
    """Any fsspec URL; the store lock is made of lease files (see :mod:`.leases`)."""

    blind_writes = False
    packs: Packs | None = None

    def __init__(self, location: str) -> None:
        try:
            import fsspec
        except ImportError:
            raise MLOpsUsageError(
                f"snapshot_store {location!r} is a URL, which needs fsspec; pip install fsspec"
            ) from None
        try:
            # Listings are never cached: another process's new version or lease must be seen
            # (s3fs answers exists()/info() from a cached listing once it has one).
            try:
                self.fs, root = fsspec.core.url_to_fs(location, use_listings_cache=False)
            except TypeError:  # a filesystem without a listings cache
                self.fs, root = fsspec.core.url_to_fs(location)
        except (ImportError, ValueError) as exc:
            raise MLOpsUsageError(f"cannot open snapshot_store {location!r}: {exc}") from None
        self.root = root.rstrip("/")
        self.location = location.rstrip("/")
        # A folder reached through fsspec (local://) writes in place, so a killed write would
        # leave a partial blob under its final name: publish through a temp file, as locally
        # (loose: this backend reads objects by their own paths, not from packs).
        local = "file" in _protocols(self.fs)
        self._folder = LocalBackend(self.root, pack=False) if local else None
        # Sizes of immutable blobs this backend wrote or found: on an object store each size()
        # would otherwise be one more request per object (a save asks exists, writes, sizes).
        self._sizes: dict[str, int] = {}

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def read(self, key: str) -> bytes:
        data: bytes = self.fs.cat_file(self._path(key))
        return data

    def local_path(self, key: str) -> str | None:
        return None

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        if self._folder is not None:
            with self._folder.writer(key) as fh:
                yield fh
            return
        buffer = io.BytesIO()
        yield buffer
        # One PUT of the whole blob: object stores publish it atomically.
        data = buffer.getvalue()
        self._put(key, data)
        self._sizes[key] = len(data)

    def _put(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(key), data)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        if self._folder is not None:
            return self._folder.create_exclusive(key, data)
        path = self._path(key)
        try:
            with self.fs.open(path, "xb") as fh:
                fh.write(data)
            return True
        except FileExistsError:
            return False
        except (ValueError, NotImplementedError):
            # No conditional create here: check, then write (a race can lose one version).
            if self.fs.exists(path):
                return False
            self.fs.pipe_file(path, data)
            return True

    def exists(self, key: str) -> bool:
        if self._folder is not None:
            return self._folder.exists(key)
        try:
            info = self.fs.info(self._path(key))  # one request, which also gives the size
        except FileNotFoundError:
            return False
        if info.get("type") == "file" and info.get("size") is not None:
            self._sizes[key] = int(info["size"])
        return True

    def size(self, key: str) -> int:
        known = self._sizes.get(key)
        return int(self.fs.size(self._path(key))) if known is None else known

    def age(self, key: str) -> float:
        try:
            modified = self.fs.modified(self._path(key))
        except (NotImplementedError, OSError, AttributeError):
            return 0.0
        return time.time() - modified.timestamp()

    def touch(self, key: str) -> None:
        """Object stores cannot bump a blob's time; the store lock keeps gc off reused objects."""

    def kept(self, key: str) -> bool:
        return False

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not self.fs.exists(base):
            return []
        start = len(self.root) + 1
        return sorted(p[start:] if p.startswith(self.root) else p for p in self.fs.find(base))

    def delete(self, key: str) -> None:
        self._sizes.pop(key, None)
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))

    def url(self, key: str) -> str:
        return f"{self.location}/{key}"

    def sync(self) -> None:
        """Object store writes are durable once the PUT returns; a folder's names need fsync."""
        if self._folder is not None:
            self._folder.sync()

    def put(self, key: str, data: bytes) -> None:
        """Write a small mutable file (a lease); readers tolerate seeing it half-written."""
        if self._folder is not None:
            Path(self._path(key)).parent.mkdir(parents=True, exist_ok=True)
        self.fs.pipe_file(self._path(key), data)

    def lock(self, exclusive: bool) -> contextlib.AbstractContextManager[None]:
        """Saves share the store, gc takes it alone: the same guarantee as a local store."""
        return leases.hold(self, exclusive)


# Pack PUTs at once on an object store (each waits on the network, not on a core).
PACK_UPLOADERS = 4


@register("s3")
@register("s3a")
class S3Backend(FsspecBackend):
    """S3 through s3fs. New objects are packed (see :mod:`.packs`): a save is a few large PUTs,
    not one per cell, and a load reads each object with one ranged GET. Objects larger than
    ``PACKED_MAX`` and stores written before packs are loose: one PUT with ``If-None-Match: *``
    (a key already stored keeps its equal, content-addressed blob and counts as ``kept``; a store
    that refuses conditional writes gets plain PUTs from then on). s3fs's ``exists()`` of a
    missing key is a HEAD and then a LIST (to find a folder of that name): here it is the HEAD.

    What the packs' indexes say is re-listed each time the store lock is taken, so gc's
    removals and other writers' packs are seen; an object found in them is not written again.
    """

    blind_writes = True

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self._kept: set[str] = set()
        self._fresh: set[str] = set()  # objects written while this lock is held: new, not kept
        self._conditional = True
        self._modified: dict[str, float] = {}  # listed times of immutable keys
        self.packs: Packs = Packs(self, uploaders=PACK_UPLOADERS)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        if not key.startswith(OBJECTS):
            with super().writer(key) as fh:
                yield fh
            return
        buffer = _Parts()
        yield buffer  # type: ignore[misc]  # a file-like object that only writes
        data = buffer.value()
        size = memoryview(data).nbytes
        if size <= PACKED_MAX:
            self._fresh.add(key)
            self.packs.add(_object_id(key), data)  # readable once the pack is flushed (``sync``)
        else:
            self._put(key, bytes(data))
            if key in self._kept:
                return
        self._sizes[key] = size

    def _put(self, key: str, data: bytes) -> None:
        if key.startswith(OBJECTS) and self._conditional:
            try:
                self.fs.pipe_file(self._path(key), data, mode="create")
                self._kept.discard(key)
                self._fresh.add(key)
                return
            except FileExistsError:
                self._kept.add(key)
                self._sizes.pop(key, None)  # the stored blob's size, asked for if needed
                return
            except (OSError, TypeError, ValueError, NotImplementedError):
                self._conditional = False  # no conditional PUT here: plain PUTs from now on
        self.fs.pipe_file(self._path(key), data)

    def kept(self, key: str) -> bool:
        """Stored before this save wrote it: a conditional PUT found it, or a pack holds it
        (asked before writing too: then nothing is encoded or sent)."""
        if key in self._kept:
            return True
        if key in self._fresh or not key.startswith(OBJECTS):
            return False
        return self.packs.locate(_object_id(key)) is not None

    def read(self, key: str) -> bytes:
        if not key.startswith(OBJECTS):
            return super().read(key)
        return self.packs.read_or_loose(_object_id(key), lambda: super(S3Backend, self).read(key))

    def exists(self, key: str) -> bool:
        if key.startswith(OBJECTS) and self.packs.locate(_object_id(key)) is not None:
            return True
        bucket, name, _ = self.fs.split_path(self._path(key))
        try:
            head = self.fs.call_s3("head_object", Bucket=bucket, Key=name)
        except FileNotFoundError:
            return False
        self._sizes[key] = int(head["ContentLength"])
        return True

    def size(self, key: str) -> int:
        known = self._sizes.get(key)
        if known is not None:
            return known
        slot = self.packs.locate(_object_id(key)) if key.startswith(OBJECTS) else None
        return slot.length if slot is not None else super().size(key)

    def sync(self) -> None:
        """Upload the open pack, then its index: a manifest may now name its objects."""
        self.packs.flush()

    @contextlib.contextmanager
    def lock(self, exclusive: bool) -> Iterator[None]:
        with leases.hold(self, exclusive), self.packs.held(self._forget_holding):
            yield

    def _forget_holding(self) -> None:
        """What a holding of the lock learnt is stale once it ends: the next one asks again."""
        self._kept.clear()
        self._fresh.clear()

    # --- what packs need (see packs.Blobs) ----------------------------------------------------

    def put_blob(self, key: str, parts: list[bytes | memoryview]) -> None:
        self.fs.pipe_file(self._path(key), b"".join(parts))

    def read_range(self, key: str, start: int, end: int) -> bytes:
        data: bytes = self.fs.cat_file(self._path(key), start=start, end=end)
        if len(data) != end - start:
            raise FileNotFoundError(f"{self.url(key)} holds fewer bytes than its index says")
        return data

    def read_many(self, keys: list[str]) -> dict[str, bytes]:
        found = self.fs.cat([self._path(k) for k in keys], on_error="omit")
        start = len(self.root) + 1
        return {p[start:]: data for p, data in found.items()}

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``; the sizes and times of immutable ones (objects, manifests) are
        kept, so gc's ``size``/``age`` of each costs no HEAD."""
        listed = self.listing(prefix)
        for key, (size, modified) in listed.items():
            if key.startswith(IMMUTABLE):
                self._sizes[key] = size
                self._modified[key] = modified
        return sorted(listed)

    def age(self, key: str) -> float:
        modified = self._modified.get(key)
        return super().age(key) if modified is None else time.time() - modified

    def delete(self, key: str) -> None:
        self._modified.pop(key, None)
        super().delete(key)

    def listing(self, prefix: str) -> dict[str, tuple[int, float]]:
        """Keys under ``prefix`` with size and modification time: one LIST per 1,000 keys
        (s3fs's ``find`` adds a HEAD and a LIST when nothing is there)."""
        bucket, name, _ = self.fs.split_path(self._path(prefix))
        listed: dict[str, tuple[int, float]] = {}
        start = len(self._path("")) - len(bucket) - 1
        token: dict[str, str] = {}
        while True:
            page = self.fs.call_s3(
                "list_objects_v2", Bucket=bucket, Prefix=name.rstrip("/") + "/", **token
            )
            for item in page.get("Contents", []):
                stamp = item["LastModified"].timestamp()
                listed[item["Key"][start:]] = (int(item["Size"]), stamp)
            if not page.get("IsTruncated"):
                return listed
            token = {"ContinuationToken": page["NextContinuationToken"]}


class _Parts:
    """A write-only file-like object that keeps what is written as it is: a read-only buffer (an
    encoded Arrow cell, bytes) is never copied; a writable one, which its writer may reuse, is."""

    def __init__(self) -> None:
        self.parts: list[bytes | memoryview] = []
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.parts.append(view if view.readonly else bytes(view))
        self.size += view.nbytes
        return view.nbytes

    def value(self) -> bytes | memoryview:
        """Everything written, as one buffer (the part itself when there was one)."""
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


class _Spill(_Parts):
    """What a packable object is written to: memory while it fits in a pack, then (past
    ``PACKED_MAX``) a loose file opened by ``open_loose``, so a large file is never held whole."""

    def __init__(self, open_loose: Callable[[], IO[bytes]]) -> None:
        super().__init__()
        self.loose: IO[bytes] | None = None
        self._open_loose = open_loose

    def write(self, data: Any) -> int:
        if self.loose is None and self.size + memoryview(data).nbytes > PACKED_MAX:
            self.loose = self._open_loose()
            self.loose.writelines(self.parts)
            self.parts = []
        if self.loose is not None:
            return self.loose.write(data)
        return super().write(data)


def _object_id(key: str) -> str:
    """The id of the object stored under ``key`` (``objects/ab/cdef...``: see repository)."""
    return key.removeprefix(OBJECTS).replace("/", "")


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def read_json(backend: Backend, key: str) -> Any:
    import json

    return json.loads(backend.read(key))


def json_bytes(value: Any) -> bytes:
    import json

    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode()


def write_json(backend: Backend, key: str, value: Any) -> None:
    with backend.writer(key) as fh:
        fh.write(json_bytes(value))
