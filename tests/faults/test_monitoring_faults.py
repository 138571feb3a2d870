"""Monitoring under faults: feedback writers racing and SIGKILLed mid-write, schedule hosts racing
to start on one store."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from jupyter_mlops.context import current_settings
from jupyter_mlops.monitoring import schedules
from jupyter_mlops.monitoring.feedback import feedback_folder, read_feedback

CALLS, ROWS = 40, 50  # feedback calls per writer, rows per call
WRITER = textwrap.dedent(
    """
    import sys
    import jupyter_mlops as mlops
    name, calls, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for call in range(calls):
        ids = [f"{name}-{call}-{i}" for i in range(rows)]
        mlops.feedback("churn@prod", ids, [call % 2] * rows, revenue=[float(call)] * rows)
        print(call, flush=True)
    """
)
KILLED_WRITER = textwrap.dedent(
    """
    import sys
    import jupyter_mlops as mlops
    for call in range(100000):
        ids = [f"killed-{call}-{i}" for i in range(500)]
        mlops.feedback("churn@prod", ids, [1] * 500)
        print(call, flush=True)
    """
)


def spawn(source: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", source, *args], stdout=subprocess.PIPE, text=True
    )


def test_racing_and_killed_feedback_writers_lose_nothing_complete(store: Path) -> None:
    writers = [spawn(WRITER, name, str(CALLS), str(ROWS)) for name in ("a", "b")]
    victims = 0
    for _ in range(3):  # a third writer SIGKILLed at a random moment, three times
        victim = spawn(KILLED_WRITER)
        assert victim.stdout is not None
        victim.stdout.readline()  # it has written at least one file
        time.sleep(random.uniform(0.0, 0.3))
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        victims += 1
    for writer in writers:
        assert writer.wait(timeout=300) == 0
    frame = read_feedback(current_settings(), "churn")
    assert frame is not None
    for name in ("a", "b"):
        mine = frame[frame["request_id"].str.startswith(f"{name}-")]
        assert len(mine) == CALLS * ROWS  # every row of every call, once
        assert sorted(set(mine["revenue"])) == [float(c) for c in range(CALLS)]
    killed = frame[frame["request_id"].str.startswith("killed-")]
    assert len(killed) % 500 == 0  # whole calls only: no half-written file is ever read
    assert len(killed) >= victims * 500  # each victim had finished one call before the kill
    folder = feedback_folder(current_settings(), "churn")
    partial = list(folder.glob(".*.partial"))
    assert len(partial) <= victims  # at most one abandoned temporary file per kill, never read
    print(f"{victims} writers killed; {len(killed) // 500} of their calls kept whole")


def test_hosts_racing_to_start_on_one_store_only_one_runs(store: Path) -> None:
    settings = current_settings()
    hosts = [
        subprocess.Popen(
            [sys.executable, "-m", "jupyter_mlops.monitoring.scheduler", str(store), "--poll", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        deadline = time.monotonic() + 60
        while sum(h.poll() is not None for h in hosts) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        exits = [h.poll() for h in hosts]
        assert sorted(exits, key=lambda e: e is None)[:3] == [3, 3, 3] and exits.count(None) == 1
        running = next(h for h in hosts if h.poll() is None)
        assert f"process {running.pid}" in schedules.list_schedules(settings).host
    finally:
        for host in hosts:
            if host.poll() is None:
                host.send_signal(signal.SIGTERM)
                assert host.wait(timeout=30) == 0
    assert "no scheduler is running" in schedules.list_schedules(settings).host
    assert os.path.exists(schedules.lock_path(store))
