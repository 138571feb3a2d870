"""Whether a job's process still runs and is still ours, and stopping one that resists: real
processes, real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_mlops.distributed import procs

STUBBORN = (
    "import signal, sys, time\n"
    "for sig in (signal.SIGINT, signal.SIGTERM): signal.signal(sig, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def start(marker: Path, code: str = STUBBORN) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(marker)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def test_a_zombie_is_gone_and_a_pid_is_ours_only_while_it_names_the_job(tmp_path: Path) -> None:
    process = start(tmp_path / "job-1")
    try:
        assert procs.alive(process.pid)
        assert procs.owned(process.pid, str(tmp_path / "job-1"))
        assert not procs.owned(process.pid, str(tmp_path / "job-2"))
        process.kill()
        deadline = time.monotonic() + 10
        while procs.alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not procs.alive(process.pid)  # a zombie: exited, not yet reaped
        assert process.poll() is not None  # reaped only now
    finally:
        process.kill()
        process.wait(10)
    assert not procs.alive(process.pid) and not procs.owned(process.pid, str(tmp_path))


def test_stop_escalates_to_sigkill_and_leaves_other_processes_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        procs, "STAGES", ((signal.SIGINT, 0.5), (signal.SIGTERM, 0.5), (signal.SIGKILL, 5.0))
    )
    ours = [start(tmp_path / "job") for _ in range(2)]
    other = start(tmp_path / "elsewhere")
    try:
        pids = [p.pid for p in ours] + [other.pid]
        left = procs.stop(lambda: pids, str(tmp_path / "job"), first=ours[0].pid)
        assert left == []
        assert [p.wait(10) for p in ours] == [-signal.SIGKILL] * 2  # SIGINT and SIGTERM ignored
        assert other.poll() is None  # not named by the marker: never signalled
    finally:
        for process in [*ours, other]:
            process.kill()
            process.wait(10)
