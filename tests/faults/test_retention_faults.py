"""Retention under real faults, counted: ``gc --keep-last`` racing another process that saves new
versions of the same name, and SIGKILL at random moments of ``gc --keep-last`` and of ``rm``.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.snapshots import service
from jupyter_mlops.snapshots.repository import manifest_key, object_key
from jupyter_mlops.snapshots.tombstones import REMOVED_SUFFIX
from jupyter_mlops.snapshots.verify import object_ids
from tests.faults.test_snapshots_faults import run_script
from tests.store_files import files as store_files
from tests.store_files import orphan_packs, stored_objects

STORE = Path(".mlops/snapshots")
PROCESS_TIMEOUT_S = 120


def frame(i: int, rows: int = 3_000) -> pd.DataFrame:
    """Consecutive versions share the "slow" column: a new save reuses an object of the version
    gc is removing at that moment."""
    rng = np.random.default_rng(i)
    slow = np.random.default_rng(10_000 + i // 2).normal(size=rows)
    return pd.DataFrame({"shared": np.arange(rows), "slow": slow, "x": rng.normal(size=rows)})


FRAME = inspect.getsource(frame)  # the child processes build the same frames


def start(tmp: Path, name: str, source: str, *args: str) -> subprocess.Popen[str]:
    """A child process running ``source`` with ``frame`` defined."""
    prelude = "import numpy as np, pandas as pd\n" + FRAME
    return run_script(tmp, name, prelude + textwrap.dedent(source), *args)


def live_keys() -> set[str]:
    store = service.open_store(current_settings())
    keys = set()
    for record in store.all_records():
        manifest = store.manifest(record["snapshot"])
        keys |= {manifest_key(record["snapshot"])}
        keys |= {object_key(o) for o, _ in object_ids(manifest)}
    return keys


def lost_objects(root: Path = STORE) -> int:
    """Objects (and manifests) a live version names that are not in the store."""
    return len(live_keys() - stored_objects(root) - store_files("manifests", root))


def unreferenced(root: Path = STORE) -> set[str]:
    """What the store holds that no live version names: objects, manifests, packs without an
    index."""
    held = stored_objects(root) | store_files("manifests", root)
    return (held - live_keys()) | orphan_packs(root)


def tombstones(root: Path = STORE) -> dict[str, dict[str, object]]:
    """Every tombstone, parsed (a torn one fails the test here)."""
    return {
        key: json.loads((root / key).read_text())
        for key in store_files("refs", root)
        if key.endswith(REMOVED_SUFFIX)
    }


def live_versions(name: str = "train") -> list[int]:
    return [int(r.rsplit("@v", 1)[1]) for r in mlops.snapshots(name)["ref"]]


# --- gc --keep-last racing a saving process -------------------------------------------------------

SAVER = """
    import sys
    import jupyter_mlops as mlops

    print("ready", flush=True)
    for i in range(int(sys.argv[1])):
        print(mlops.snapshot(frame(i), "train").version, flush=True)
"""


@pytest.mark.parametrize("kind", ["folder", "fsspec"])
def test_keep_last_racing_a_saving_process_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    trials = 10  # versions saved while gc --keep-last 2 runs in a loop
    root = STORE
    if kind == "fsspec":  # lease files instead of flock
        root = tmp_path / "remote"
        monkeypatch.setenv("MLOPS_SNAPSHOT_STORE", f"local://{root}")
    mlops.snapshot(pd.DataFrame({"seed": [1]}), "seed")
    mlops.gc_snapshots(keep_last=2)  # imports paid before the race starts
    saver = start(tmp_path, "saver", SAVER, str(trials))
    assert saver.stdout is not None and saver.stdout.readline() == "ready\n"
    sweeps = removed = 0
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while saver.poll() is None and time.monotonic() < deadline:
        report = service.collect_garbage(current_settings(), keep_last=2)
        sweeps += 1
        removed += len(report.removed_versions)
    out, err = saver.communicate(timeout=PROCESS_TIMEOUT_S)
    assert saver.returncode == 0, err
    assert [int(v) for v in out.split()] == list(range(1, trials + 1))
    assert sweeps > 1 and removed > 0, (sweeps, removed)  # gc really ran during the saves

    assert lost_objects(root) == 0
    report = mlops.verify_snapshots()
    assert report.ok, repr(report)  # every kept version is whole
    gone = {int(k.split("/v")[1].split(".")[0]) for k in tombstones(root)}
    kept = live_versions()
    assert sorted(gone | set(kept)) == list(range(1, trials + 1))  # each version: kept or marked
    for version in kept:
        assert_frame_equal(mlops.load(f"train@v{version}"), frame(version - 1))
    mlops.gc_snapshots(keep_last=2)
    assert live_versions() == [trials - 1, trials]
    assert stored_objects(root) | store_files("manifests", root) == live_keys()
    assert orphan_packs(root) == set()
    assert store_files("tmp", root) == set() and store_files("locks", root) == set()


# --- SIGKILL during gc --keep-last and during rm --------------------------------------------------

VERSIONS = 16
KEEP = 3

SPAWNER = """
    import os, signal, sys, time
    import mlflow.entities  # what gc and rm import to ask who uses a version
    import jupyter_mlops as mlops
    import jupyter_mlops.tracking.query
    from jupyter_mlops.context import current_settings
    from jupyter_mlops.snapshots import gc, retention, service

    service.open_store(current_settings()).scan()  # warm: a worker only does its job

    # Imports are paid once: each trial forks a fresh worker, which the test kills by pid.
    for line in sys.stdin:
        action, marker = line.split()
        pid = os.fork()
        if pid == 0:
            started = time.monotonic()
            if action == "gc":
                mlops.gc_snapshots(keep_last=int(sys.argv[1]))
            else:
                for version in range(1, int(sys.argv[2]) - int(sys.argv[1]) + 1):
                    mlops.remove_snapshot(f"train@v{version}")
            with open(marker + ".tmp", "w") as fh:  # the marker appears whole, never empty
                fh.write(f"{time.monotonic() - started:.3f}")
            os.replace(marker + ".tmp", marker)
            signal.pause()  # done: wait for the test's SIGKILL, so its pid is never reused
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
"""


@pytest.fixture
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with VERSIONS versions of "train" (24 objects each), copied per trial."""
    home = Path(".mlops")
    for i in range(VERSIONS):
        wide = pd.DataFrame({f"c{k}": np.full(200, i * 100 + k) for k in range(24)})
        mlops.snapshot(wide, "train")
    copy = tmp_path_factory.mktemp("retention-template") / "snapshots"
    shutil.copytree(home / "snapshots", copy)
    return copy


def fresh_store(template: Path) -> None:
    shutil.rmtree(STORE)
    shutil.copytree(template, STORE)


def check_after_kill() -> None:
    """Loadable at once: every live version whole, every tombstone whole, removed ones refused."""
    tombstones()  # each parses
    report = mlops.verify_snapshots()
    assert report.ok, repr(report)
    live = live_versions()  # each re-hashed by verify above; the newest also loads
    assert live[-1] == VERSIONS and mlops.load("train").shape == (200, 24)
    for version in set(range(1, VERSIONS + 1)) - set(live):
        with pytest.raises(mlops.SnapshotRemoved):
            mlops.load(f"train@v{version}")


def check_after_rerun() -> None:
    assert live_versions() == list(range(VERSIONS - KEEP + 1, VERSIONS + 1))
    assert stored_objects() | store_files("manifests") == live_keys() and orphan_packs() == set()
    assert store_files("tmp") == set() and mlops.verify_snapshots().ok


@pytest.mark.parametrize("action", ["gc", "rm"])
def test_sigkill_during_retention_leaves_a_loadable_store_and_a_rerun_completes(
    tmp_path: Path, template: Path, action: str
) -> None:
    trials, most = 6, 16  # at least 6 kills, more (up to 16) until 2 landed mid-job
    rng = random.Random(15)
    spawner = start(tmp_path, "spawner", SPAWNER, str(KEEP), str(VERSIONS))
    assert spawner.stdin is not None and spawner.stdout is not None
    landed = 0

    def launch(marker: Path) -> int:
        spawner.stdin.write(f"{action} {marker}\n")  # type: ignore[union-attr]
        spawner.stdin.flush()  # type: ignore[union-attr]
        return int(spawner.stdout.readline())  # type: ignore[union-attr]

    def rerun() -> None:
        if action == "rm":
            for version in range(1, VERSIONS - KEEP + 1):
                mlops.remove_snapshot(f"train@v{version}")  # one removed already: no change
            mlops.gc_snapshots()
        else:
            mlops.gc_snapshots(keep_last=KEEP)
        check_after_rerun()

    def kill(pid: int) -> None:
        os.kill(pid, signal.SIGKILL)  # the worker never exits by itself: pid is still its own
        assert spawner.stdout.readline() == f"{-signal.SIGKILL}\n"  # type: ignore[union-attr]

    try:
        fresh_store(template)  # one whole run first: how long the job takes here, now
        marker = tmp_path / "calibration"
        pid = launch(marker)
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        took = float(marker.read_text())
        kill(pid)
        rerun()
        trial = 0
        while trial < trials or (landed < 2 and trial < most):
            trial += 1
            fresh_store(template)
            marker = tmp_path / f"done-{trial}"
            pid = launch(marker)
            time.sleep(rng.uniform(0.05, 0.95) * took)  # the fault: SIGKILL mid-job
            kill(pid)
            marked = len(tombstones())
            leftovers = unreferenced()
            partial = 0 < marked < VERSIONS - KEEP or (action == "gc" and bool(leftovers))
            landed += not marker.exists() and partial
            if marker.exists():  # it had finished: this machine is faster now, aim earlier
                took *= 0.6
            check_after_kill()
            rerun()
    finally:
        spawner.kill()
        spawner.communicate(timeout=PROCESS_TIMEOUT_S)
    assert landed >= 2, f"only {landed} of {trial} kills landed mid-job"
