"""Which process owns a RUNNING run, and ending the runs whose process is gone.

A run records its owner as a tag when it starts: host, pid and the process's start time (so a
recycled pid is not mistaken for the owner). A kernel that was SIGKILLed never ends its run; the
next process that opens the store marks such runs KILLED, with ``mlops.error`` saying why. Only
runs owned on this host are judged: another machine's processes cannot be seen from here.
"""

from __future__ import annotations

import os
import socket
from functools import cache
from typing import TYPE_CHECKING

from .. import records

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

TAG_OWNER = records.TAG_OWNER
TAG_ERROR = records.TAG_ERROR
MAX_CHECKED = 1000  # RUNNING runs looked at per store opening


def start_time(pid: int) -> str | None:
    """The process's start time as the OS records it (None: no such process or unknown)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The command name (field 2) may hold spaces and parentheses; fields after its ')'.
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except Exception:  # psutil.NoSuchProcess, AccessDenied
        return None


@cache
def this_process() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()} {pid} {start_time(pid) or '?'}"


def owner_tags() -> dict[str, str]:
    return {TAG_OWNER: this_process()}


def is_gone(owner: str) -> bool:
    """True only when the owner surely ended: same host, and its pid is dead or reused."""
    try:
        host, pid_text, started = owner.rsplit(" ", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    now = start_time(pid)
    return started != "?" and now is not None and now != started


def end_orphans(client: MlflowClient) -> list[str]:
    """Mark KILLED every RUNNING run whose owning process on this host is gone; their ids."""
    from mlflow.entities import ViewType

    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    if not experiments:
        return []
    running = client.search_runs(
        experiments,
        filter_string="attributes.status = 'RUNNING'",
        run_view_type=ViewType.ALL,
        max_results=MAX_CHECKED,
    )
    ended = []
    for run in running:
        owner = run.data.tags.get(TAG_OWNER)
        if owner is None or not is_gone(owner):
            continue
        host, pid, _ = owner.rsplit(" ", 2)
        client.set_tag(
            run.info.run_id,
            TAG_ERROR,
            f"the process that ran it (pid {pid} on {host}) ended without closing the run "
            "(killed, crashed or its kernel was restarted); marked KILLED when the store was "
            "next opened",
        )
        client.set_terminated(run.info.run_id, "KILLED")
        ended.append(run.info.run_id)
    return ended
