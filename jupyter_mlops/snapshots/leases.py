"""The store lock of object stores, made of lease files: saves share it, gc takes it alone.

An object store has no ``flock``, so each holder announces itself with a small file under
``locks/<kind>/<writer tag>.<random>.json`` and then looks for the other kind: a save proceeds only
if it sees no gc lease after announcing, and gc only if it sees no save lease after announcing.
Whichever announced second sees the first, so a save and a sweep never overlap (object stores list
what was written before: S3, GCS and Azure are strongly consistent). A save that meets a gc queues
behind it (``locks/wait``) and gc lets queued saves go first, so neither starves the other.

Leases die with their process: on the same host gc checks the writer's pid and start time; a
lease of another host counts while its heartbeat (renewed every ``HEARTBEAT_S``) is fresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Protocol

from ..errors import MLOpsUsageError
from .owners import alive, my_tag

LOCKS = "locks"
HEARTBEAT_S = 15.0
STALE_S = 90.0  # a lease of another host whose heartbeat is older than this is dead
WAIT_S = 600.0


class LeaseStore(Protocol):
    location: str

    def put(self, key: str, data: bytes) -> None: ...

    def read(self, key: str) -> bytes: ...

    def list(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def age(self, key: str) -> float: ...


def _lease(kind: str) -> tuple[str, bytes]:
    key = f"{LOCKS}/{kind}/{my_tag()}.{uuid.uuid4().hex}.json"
    return key, _body()


def _body() -> bytes:
    host, pid = socket.gethostname(), os.getpid()
    return json.dumps({"host": host, "pid": pid, "beat": time.time()}).encode()


def _is_live(store: LeaseStore, key: str) -> bool:
    verdict = alive(key.rsplit("/", 1)[-1].split(".", 1)[0])
    if verdict is not None:
        return verdict
    try:
        beat = float(json.loads(store.read(key))["beat"])
        age = time.time() - beat
    except FileNotFoundError:
        return False
    except (ValueError, KeyError, TypeError):  # being written right now, or damaged
        age = store.age(key)
    return age < STALE_S


def live(store: LeaseStore, kind: str, mine: str = "") -> list[str]:
    """The live leases of ``kind`` (other than ``mine``); dead ones are removed on the way."""
    found = []
    for key in store.list(f"{LOCKS}/{kind}"):
        if key == mine:
            continue
        if _is_live(store, key):
            found.append(key)
        else:
            store.delete(key)
    return found


class _Waiter:
    """Bounded polling with jittered back-off; a clear error when the store stays busy."""

    def __init__(self, store: LeaseStore, what: str) -> None:
        self.store, self.what = store, what
        self.deadline = time.monotonic() + WAIT_S
        self.pause = 0.01

    def __call__(self, holders: list[str]) -> None:
        if time.monotonic() > self.deadline:
            raise MLOpsUsageError(
                f"snapshot store {self.store.location} stayed busy for {WAIT_S:.0f} s "
                f"({self.what}: {holders[0]}); try again later, or delete that lease file "
                "if its process is gone"
            )
        time.sleep(self.pause * random.uniform(0.5, 1.5))
        self.pause = min(self.pause * 1.5, 0.25)


def _until_none(store: LeaseStore, kind: str, wait: _Waiter, mine: str = "") -> None:
    while holders := live(store, kind, mine):
        wait(holders)


@contextlib.contextmanager
def _heartbeat(store: LeaseStore, key: str) -> Iterator[None]:
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                store.put(key, _body())

    thread = threading.Thread(target=beat, name="snapshot-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        store.delete(key)


def _share(store: LeaseStore) -> str:
    """Announce a save; if a gc holds the store, queue behind it and announce again."""
    wait = _Waiter(store, "a gc is running")
    key, body = _lease("save")
    queued = ""
    try:
        while True:
            store.put(key, body)
            if not live(store, "gc"):
                return key
            store.delete(key)
            if not queued:
                queued, queued_body = _lease("wait")
                store.put(queued, queued_body)
            _until_none(store, "gc", wait)
    except BaseException:
        store.delete(key)
        raise
    finally:
        if queued:
            store.delete(queued)


def _take(store: LeaseStore) -> str:
    """Announce a gc once queued saves went first; then wait for running saves to end."""
    wait = _Waiter(store, "saves are running")
    key, body = _lease("gc")
    try:
        while True:
            _until_none(store, "wait", wait)
            store.put(key, body)
            others = live(store, "gc", key)
            if others:  # two collectors: both step back, at random, and try again
                store.delete(key)
                wait(others)
                continue
            _until_none(store, "save", wait)
            return key
    except BaseException:
        store.delete(key)
        raise


@contextlib.contextmanager
def hold(store: LeaseStore, exclusive: bool) -> Iterator[None]:
    key = _take(store) if exclusive else _share(store)
    with _heartbeat(store, key):
        yield
