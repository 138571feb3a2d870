"""Contract versions under faults: writers racing on one name, writers SIGKILLed mid-write, and a
guarded snapshot killed while its contract is being checked."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jupyter_mlops as mlops
from jupyter_mlops.contracts.guard import ContractViolated
from jupyter_mlops.contracts.store import read, versions

pytestmark = pytest.mark.usefixtures("store")

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import jupyter_mlops as mlops

    go, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    (go.parent / f"ready-{name}").touch()
    deadline = time.monotonic() + 60
    while not go.exists():  # start together: the versions interleave on one name
        if time.monotonic() > deadline:
            sys.exit("never told to go")
        time.sleep(0.01)
    for i in range(count):
        mlops.expect("shared", f"rows >= {i}", f"{name} between 0 {i + 1}")
        print(i, flush=True)
    """
)


def start_writers(tmp_path: Path, names: list[str], count: int) -> list[subprocess.Popen[str]]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(go), name, str(count)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{n}").exists() for n in names):
        assert time.monotonic() < deadline, "writers never started"
        assert all(p.poll() is None for p in procs), "a writer died while starting"
        time.sleep(0.05)
    go.touch()
    return procs


def every_version_whole(home: Path) -> list[int]:
    """Every stored version parses, with the rules it was written with; their numbers."""
    found = versions(home, "shared")
    for number in found:
        contract = read(home, "shared", number)
        assert contract.version == number
        assert {r.kind for r in contract.rules} <= {"rows", "range"}
    return found


def test_two_processes_adding_rules_at_once_each_get_their_own_versions(
    tmp_path: Path, store: Path
) -> None:
    count = 8
    procs = start_writers(tmp_path, ["a", "b"], count)
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.split() == [str(i) for i in range(count)]
    found = every_version_whole(store)
    assert found == list(range(1, 2 * count + 1))  # none lost, none written twice
    latest = read(store, "shared")
    # Each version adds to the one before: the last holds both writers' columns.
    assert {r.column for r in latest.rules if r.column} == {"a", "b"}


def test_writers_killed_mid_write_leave_only_whole_versions(tmp_path: Path, store: Path) -> None:
    rng = random.Random(18)
    survived = []
    for trial in range(3):
        (tmp_path / "go").unlink(missing_ok=True)
        for ready in tmp_path.glob("ready-*"):
            ready.unlink()
        (proc,) = start_writers(tmp_path, [f"k{trial}"], 10_000)
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one version written, then kill at a random moment
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        found = every_version_whole(store)
        assert found == list(range(1, len(found) + 1))  # numbered without gaps
        survived.append(len(found))
        after = mlops.expect("shared", "rows >= 0")  # the next writer is not disturbed
        assert after.version == len(found) + 1
    assert survived == sorted(survived) and survived[0] >= 1


GUARDED = textwrap.dedent(
    """
    import numpy as np, pandas as pd
    import jupyter_mlops as mlops

    frame = pd.DataFrame({"x": np.arange(2_000_000)})
    print("checking", flush=True)
    mlops.snapshot(frame, "guarded")
    print("saved", flush=True)
    """
)


def test_guarded_snapshots_killed_at_random_moments_leave_whole_versions_or_none(
    tmp_path: Path,
) -> None:
    """SIGKILL while the contract is checked or the data written: never a partial version."""
    mlops.expect("guarded", "x unique", "x >= 0")  # pandera reads every value first
    script = tmp_path / "guarded.py"
    script.write_text(GUARDED)
    rng = random.Random(7)
    outcomes = []
    for _trial in range(3):
        proc = subprocess.Popen(
            [sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "checking"
        time.sleep(rng.uniform(0.0, 1.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        outcomes.append("saved" if proc.stdout.read().strip() == "saved" else "killed")
        proc.stdout.close()
        listed = mlops.snapshots()
        saved = listed[listed["name"] == "guarded"] if "name" in listed else listed.iloc[0:0]
        assert len(saved) <= 1  # the same content is one version, however often it is saved
        if len(saved):
            assert mlops.verify_snapshots("guarded").ok
    assert "killed" in outcomes, outcomes  # at least one kill landed before the save finished
    with pytest.raises(ContractViolated):  # the contract still guards the name
        mlops.snapshot(pd.DataFrame({"x": [1, 1]}), "guarded")
    saved = mlops.snapshot(pd.DataFrame({"x": np.arange(2_000_000)}), "guarded")
    assert saved.version == 1 and mlops.load(saved.ref)["x"].is_unique
