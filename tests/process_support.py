"""Which processes of a job are still alive: the orphan checks of the distributed tests."""

from __future__ import annotations

import time

import psutil


def alive(pids: list[int]) -> list[int]:
    """The pids still running (a zombie waiting for its parent counts as gone)."""

    def up(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    return [p for p in pids if up(p)]


def survivors(pids: list[int], seconds: float) -> list[int]:
    """The pids still alive after waiting up to ``seconds`` for all of them to end."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive(pids):
        time.sleep(0.1)
    return alive(pids)
