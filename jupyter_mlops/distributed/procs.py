"""Keeping processes tied to their parent, and stopping a job's processes for good.

torchrun starts every worker in its own session, and we start the agent in its own session so
that a Jupyter interrupt (SIGINT to the kernel's process group) does not reach it half-handled.
Nothing then kills them when their parent dies, so both levels ask the kernel (Linux ``prctl``)
for a signal when their parent goes, and a stop signals every process group explicitly.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Have the OS send ``sig`` to this process when its parent exits (Linux only).

    SIGKILL, not SIGTERM: once the parent is gone the job is lost anyway, and torchrun's agent
    was seen to hang in its own SIGTERM shutdown (tail threads still running, parent pid 1).
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def alive(pid: int) -> bool:
    """Running (a zombie that nobody reaped yet counts as gone)."""
    import psutil

    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def owned(pid: int, marker: str) -> bool:
    """Is ``pid`` still one of ours (its command line names the job folder), not a reused pid?"""
    import psutil

    try:
        return any(marker in arg for arg in psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid`` (agent and workers each lead their own)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


STAGES = ((signal.SIGINT, 5.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 3.0))


def stop(
    pids: Callable[[], Iterable[int]],
    marker: str,
    *,
    first: int | None = None,
    on_wait: Callable[[], None] = lambda: None,
) -> list[int]:
    """Escalate SIGINT -> SIGTERM -> SIGKILL over the process groups of ``pids()``.

    SIGINT goes only to ``first`` (the torchrun agent, which then stops its workers cleanly);
    later stages go to every group. ``pids`` is asked again at each stage because workers may
    register while we wait. Returns the pids that survived (empty unless something is stuck
    in the kernel, e.g. uninterruptible I/O).
    """
    for sig, wait in STAGES:
        targets = [p for p in pids() if alive(p) and owned(p, marker)]
        if not targets:
            return []
        receivers = [p for p in targets if sig != signal.SIGINT or p == first]
        if not receivers:  # the agent is already gone: nobody to stop the workers gently
            continue
        for pid in receivers:
            signal_group(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            on_wait()
            if not any(alive(p) for p in targets):
                break
            time.sleep(0.05)
    return [p for p in pids() if alive(p) and owned(p, marker)]
