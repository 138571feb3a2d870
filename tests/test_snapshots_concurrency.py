"""Real concurrent processes: two writers of one name, and gc while a writer runs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.snapshots import service

WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np, pandas as pd
    import jupyter_mlops as mlops

    writer, count, start_at = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    time.sleep(max(0.0, start_at - time.time()))  # both processes start saving together
    for i in range(count):
        df = pd.DataFrame({"writer": writer, "i": np.arange(50) + i, "x": np.random.rand(50)})
        snap = mlops.snapshot(df, "shared")
        df.to_pickle(f"expected-{snap.version}.pkl")
        print(snap.version, flush=True)
    """
)


def start_writers(n: int, count: int, tmp: Path) -> list[subprocess.Popen[str]]:
    script = tmp / "writer.py"
    script.write_text(WRITER)
    start_at = time.time() + 3.0
    return [
        subprocess.Popen(
            [sys.executable, str(script), str(k), str(count), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(n)
    ]


def finish(procs: list[subprocess.Popen[str]]) -> list[int]:
    versions = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        versions += [int(v) for v in out.split()]
    return versions


def test_two_processes_saving_one_name_both_get_their_own_versions(tmp_path: Path) -> None:
    versions = finish(start_writers(2, 8, tmp_path))
    assert sorted(versions) == list(range(1, 17))  # no version lost, none given twice
    listing = mlops.snapshots("shared")
    assert list(listing["version"]) == list(range(1, 17))
    for version in versions:
        expected = pd.read_pickle(f"expected-{version}.pkl")
        assert_frame_equal(mlops.load(f"shared@v{version}"), expected)


def test_gc_under_a_concurrent_writer_never_breaks_a_version(tmp_path: Path) -> None:
    mlops.snapshot(pd.DataFrame({"seed": [1]}), "shared")  # the store exists before gc starts
    procs = start_writers(1, 12, tmp_path)
    sweeps = 0
    while procs[0].poll() is None:
        # No grace period at all: only the store lock keeps gc off the writer's fresh objects.
        from jupyter_mlops.context import current_settings
        from jupyter_mlops.snapshots import service

        service.collect_garbage(current_settings(), grace_s=0.0)
        sweeps += 1
    versions = finish(procs)
    assert sweeps > 1 and sorted(versions) == list(range(2, 14))
    report = mlops.verify_snapshots()
    assert report.ok and report.snapshots == 13, repr(report)
    for version in versions:
        assert_frame_equal(
            mlops.load(f"shared@v{version}"), pd.read_pickle(f"expected-{version}.pkl")
        )


def test_an_object_store_lease_of_another_host_counts_while_its_heartbeat_is_fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_mlops.errors import MLOpsUsageError
    from jupyter_mlops.snapshots import leases
    from jupyter_mlops.snapshots.owners import host_id

    monkeypatch.setenv("MLOPS_SNAPSHOT_STORE", f"local://{tmp_path / 'remote'}")
    mlops.snapshot(pd.DataFrame({"a": [1]}), "first")
    backend = service.open_store(current_settings()).backend
    other_host = "0" * 12 if host_id() != "0" * 12 else "1" * 12
    key = f"locks/gc/{other_host}-4242-1.lease.json"  # a gc running on another machine

    def lease(beat: float) -> bytes:
        return json.dumps({"host": "elsewhere", "pid": 4242, "beat": beat}).encode()

    backend.put(key, lease(time.time()))
    monkeypatch.setattr(leases, "WAIT_S", 0.3)
    with pytest.raises(MLOpsUsageError, match=f"stayed busy .*a gc is running: {key}"):
        mlops.snapshot(pd.DataFrame({"a": [2]}), "blocked")
    assert backend.list("locks/save") == [] and backend.list("locks/wait") == []
    assert mlops.snapshots("blocked").empty

    backend.put(key, lease(time.time() - leases.STALE_S - 1))  # its heartbeat stopped
    assert mlops.snapshot(pd.DataFrame({"a": [2]}), "blocked").version == 1
    assert backend.list("locks") == []  # the dead lease was removed on the way


def test_a_held_lease_keeps_beating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_mlops.snapshots import leases

    monkeypatch.setenv("MLOPS_SNAPSHOT_STORE", f"local://{tmp_path / 'remote'}")
    monkeypatch.setattr(leases, "HEARTBEAT_S", 0.05)
    backend = service.open_store(current_settings()).backend
    with backend.lock(exclusive=False):
        (key,) = backend.list("locks/save")
        first = json.loads(backend.read(key))["beat"]
        deadline = time.monotonic() + 10
        while json.loads(backend.read(key) or b'{"beat": 0}')["beat"] == first:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.02)
    assert backend.list("locks/save") == []
