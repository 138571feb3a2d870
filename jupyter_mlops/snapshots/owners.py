"""Which process wrote a temp file or holds a lease, and whether it is still alive.

A writer's temp files and leases carry its tag, ``<host id>-<pid>-<process start time>``. On the
same host gc can tell for sure whether that process is gone (the start time guards against a
reused pid), so a killed save's leftovers are reclaimed at once; a tag from another host is
judged by age (temp files) or heartbeat (leases) instead.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket


@functools.cache
def host_id() -> str:
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=6).hexdigest()


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of ``pid``, None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) <= 19:
        return None
    return fields[0].decode(), fields[19].decode()


def process_start(pid: int) -> str:
    found = _proc_stat(pid)
    return found[1] if found else ""


_TAG: tuple[int, str] = (0, "")


def my_tag() -> str:
    """This process's tag (computed again after a fork: a forked child is another writer)."""
    global _TAG
    pid = os.getpid()
    if _TAG[0] != pid:
        _TAG = (pid, f"{host_id()}-{pid}-{process_start(pid) or 0}")
    return _TAG[1]


def parse_tag(text: str) -> tuple[str, int, str] | None:
    parts = text.split("-")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


def alive(tag: str) -> bool | None:
    """True or False for a writer of this host; None when it cannot be told (another host)."""
    parsed = parse_tag(tag)
    if parsed is None or parsed[0] != host_id():
        return None
    _, pid, start = parsed
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process, alive
    found = _proc_stat(pid)
    if found is None:
        return True  # no /proc here: the pid exists, so assume it is the writer
    state, started = found
    return state not in ("Z", "X") and (start == "0" or started == start)
