"""The snapshot store under real faults, counted: SIGKILL mid-save, gc racing a save on an fsspec
store, crafted pickles (load, verify, the server's promote route), tampered manifests and damaged
version files.
"""

from __future__ import annotations

import base64
import json
import operator
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from tornado.httpclient import HTTPClientError

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.display.snapshots import verify_html
from jupyter_mlops.errors import MLOpsUsageError
from jupyter_mlops.snapshots import service
from jupyter_mlops.snapshots.hashing import digest_bytes
from jupyter_mlops.snapshots.repository import content_id, object_key, version_key
from jupyter_mlops.snapshots.store import json_bytes
from tests.server_support import populate, project_settings
from tests.store_files import files as store_files
from tests.store_files import holders, orphan_packs, stored_objects

STORE = Path(".mlops/snapshots")
PROCESS_TIMEOUT_S = 120


def run_script(tmp: Path, name: str, source: str, *args: str) -> subprocess.Popen[str]:
    script = tmp / f"{name}.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def referenced_objects() -> set[str]:
    store = service.open_store(current_settings())
    from jupyter_mlops.snapshots.verify import object_ids

    keys = set()
    for record in store.all_records():
        manifest = store.manifest(record["snapshot"])
        keys |= {object_key(o) for o, _ in object_ids(manifest)}
    return keys


# --- SIGKILL mid-save -----------------------------------------------------------------------------

SAVER = """
    import os, sys
    import numpy as np, pandas as pd
    from jupyter_mlops.context import current_settings
    from jupyter_mlops.snapshots import packs, service
    from jupyter_mlops.snapshots.save import save

    # 1 MB packs instead of 8: packs are then written all through a save, not only at its end,
    # so a kill at a random moment often leaves objects that no version names yet.
    packs.PACK_BYTES = 1 << 20
    settings = current_settings()
    store = service.open_store(settings)
    # Imports are paid once: each trial forks a fresh saver, which the test kills by pid.
    for trial in map(int, sys.stdin):
        pid = os.fork()
        if pid == 0:
            rng = np.random.default_rng(trial)
            while True:
                df = pd.DataFrame({f"c{i}": rng.normal(size=60_000) for i in range(4)})
                df["s"] = [f"row{i}" for i in rng.integers(0, 10**9, 60_000)]
                cache = service.stat_cache_path(settings)
                save(store, df, "killed", stat_cache=cache, chunk_rows=4_000)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
"""


MIN_KILLS, MAX_KILLS = 8, 24


def leftover_files(root: Path) -> set[str]:
    """The files that hold unreferenced objects (loose, or the packs that hold them), packs
    without an index, temp files."""
    unreferenced = stored_objects(root) - referenced_objects()
    return holders(unreferenced, root) | orphan_packs(root) | store_files("tmp", root)


@pytest.mark.parametrize("kind", ["folder", "fsspec"])
def test_sigkill_mid_save_leaves_no_half_version_and_gc_reclaims_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    root = STORE
    if kind == "fsspec":  # the same folder layout, written through fsspec (local://)
        root = tmp_path / "remote"
        monkeypatch.setenv("MLOPS_SNAPSHOT_STORE", f"local://{root}")
    rng = random.Random(12)
    mlops.snapshot(pd.DataFrame({"seed": [1]}), "seed")  # the store exists
    spawner = run_script(tmp_path, "saver", SAVER)
    assert spawner.stdin is not None and spawner.stdout is not None
    kills = 0
    try:
        # At least MIN_KILLS kills, then more (up to MAX_KILLS) until one has left something to
        # reclaim: on a loaded machine the random moments can all fall between two saves.
        while kills < MIN_KILLS or (kills < MAX_KILLS and not leftover_files(root)):
            spawner.stdin.write(f"{kills}\n")
            spawner.stdin.flush()
            pid = int(spawner.stdout.readline())
            time.sleep(rng.uniform(0.1, 0.9))  # the fault: SIGKILL at a random moment
            os.kill(pid, signal.SIGKILL)
            assert spawner.stdout.readline() == f"{-signal.SIGKILL}\n"  # killed mid-save
            kills += 1
    finally:
        spawner.kill()
        spawner.communicate(timeout=PROCESS_TIMEOUT_S)

    report = mlops.verify_snapshots()
    assert report.ok, repr(report)  # 0 half versions: every version is whole
    for ref in mlops.snapshots()["ref"]:
        assert len(mlops.load(ref)) > 0
    leftovers = leftover_files(root)
    assert leftovers, f"none of {kills} kills landed mid-save: nothing was left to reclaim"

    done = mlops.gc_snapshots()  # the default settings, right away: the writers are dead
    assert store_files("tmp", root) == set() and store_files("locks", root) == set()
    assert stored_objects(root) == referenced_objects() and orphan_packs(root) == set()
    assert done.reclaimed_bytes > 0 and sum(done.removed.values()) >= len(leftovers)
    assert mlops.verify_snapshots().ok


def test_gc_never_deletes_a_live_writers_temp_file(tmp_path: Path) -> None:
    mlops.snapshot(pd.DataFrame({"seed": [1]}), "seed")
    holder = run_script(
        tmp_path,
        "holder",
        """
        import sys
        from jupyter_mlops.context import current_settings
        from jupyter_mlops.snapshots import service

        backend = service.open_store(current_settings()).backend
        # A manifest is always written loose, through a temp file (small objects are packed
        # in memory and have none).
        with backend.writer("manifests/" + "f" * 64 + ".json") as fh:
            fh.write(b"partial")
            print("writing", flush=True)
            sys.stdin.readline()  # hold the temp file open until told to finish
        """,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "writing\n"
        (live,) = store_files("tmp")
        mlops.gc_snapshots()
        assert store_files("tmp") == {live}  # its writer is alive: kept
    finally:
        holder.kill()  # SIGKILL: the temp file stays behind
        holder.communicate(timeout=PROCESS_TIMEOUT_S)
    assert store_files("tmp") == {live}
    mlops.gc_snapshots()
    assert store_files("tmp") == set()  # its writer is dead: gone at once


# --- gc racing a save on an fsspec store ----------------------------------------------------------

RACER = """
    import sys
    import numpy as np, pandas as pd
    from jupyter_mlops.context import current_settings
    from jupyter_mlops.snapshots import service
    from jupyter_mlops.snapshots.repository import version_key
    from jupyter_mlops.snapshots.save import save

    settings = current_settings()
    store = service.open_store(settings)
    cache = service.stat_cache_path(settings)
    print("ready", flush=True)
    for i in range(int(sys.argv[1])):
        rng = np.random.default_rng(i)
        df = pd.DataFrame({f"c{k}": rng.normal(size=2_000) for k in range(3)})
        # A version that is then removed leaves unreferenced objects behind, which the next
        # save of the same data reuses while gc runs.
        scratch = save(store, df, "scratch", stat_cache=cache, chunk_rows=100)
        store.backend.delete(version_key("scratch", scratch.version))
        print(save(store, df, "shared", stat_cache=cache, chunk_rows=100).version, flush=True)
"""


def test_gc_racing_saves_on_an_fsspec_store_never_breaks_a_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds = 10
    url = f"local://{tmp_path / 'remote'}"
    monkeypatch.setenv("MLOPS_SNAPSHOT_STORE", url)
    mlops.snapshot(pd.DataFrame({"seed": [1]}), "seed")
    assert type(service.open_store(current_settings()).backend).__name__ == "FsspecBackend"
    proc = run_script(tmp_path, "racer", RACER, str(rounds))
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    sweeps = 0
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        service.collect_garbage(current_settings(), grace_s=0.0)  # no grace period at all
        sweeps += 1
    out, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    assert proc.returncode == 0, err
    assert sweeps > 1 and sorted(int(v) for v in out.split()) == list(range(1, rounds + 1))
    missing = 0
    for version in range(1, rounds + 1):
        report = mlops.verify_snapshots(f"shared@v{version}")
        missing += len(report.problems)
    assert missing == 0, f"{missing} missing or damaged objects over {rounds} versions"
    for version in range(1, rounds + 1):
        rng = np.random.default_rng(version - 1)
        expected = pd.DataFrame({f"c{k}": rng.normal(size=2_000) for k in range(3)})
        assert_frame_equal(mlops.load(f"shared@v{version}"), expected)


# --- crafted pickles ------------------------------------------------------------------------------


class _Touch:
    """Unpickling this creates the marker file (it pickles as a call to ``open``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


class _Trojan:
    """Unpickles as the real column, after creating the marker file on the way."""

    def __init__(self, marker: Path, column: pd.Series) -> None:
        self.marker, self.column = marker, column

    def __reduce__(self) -> tuple[Any, ...]:
        return (operator.getitem, ((_Touch(self.marker), self.column), 1))


PICKLED = pd.DataFrame({"ok": [1, 2, 3], "mixed": pd.array([1, "a", 2.5], dtype=object)})


def craft_pickle_snapshot(marker: Path) -> str:
    """A correctly hashed version whose pickled column runs code when unpickled."""
    mlops.snapshot(PICKLED, "evil", allow_pickle=True)
    store = service.open_store(current_settings())
    manifest = json.loads(json.dumps(store.manifest(store.resolve("evil").id)))
    payload = pickle.dumps(_Trojan(marker, PICKLED["mixed"]), protocol=5)
    object_id = digest_bytes(payload)
    with store.backend.writer(object_key(object_id)) as fh:
        fh.write(payload)
    old = manifest["content"]["opaque"][0]["object"]
    manifest["bytes"] += len(payload) - store.backend.size(object_key(old))
    manifest["content"]["opaque"][0]["object"] = object_id
    manifest["id"] = content_id(manifest)
    store.put_manifest(manifest)
    record = store.record("evil", 1)
    version = store.add_version("evil", {**record, "snapshot": manifest["id"]})
    return f"evil@v{version}"


def test_a_crafted_pickle_never_runs_without_opt_in(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ref = craft_pickle_snapshot(marker)
    for target in ("evil@v1", ref):
        with pytest.raises(MLOpsUsageError) as caught:
            mlops.load(target)
        message = str(caught.value)
        assert "pickled column 'mixed'" in message and "allow_pickle=True" in message
        assert "\n" not in message
    report = mlops.verify_snapshots(ref)
    assert report.ok and "pickled column 'mixed'" in repr(report)
    assert "pickled column" in verify_html(report)
    assert not marker.exists()  # nothing ran: not on load, not on verify
    assert_frame_equal(mlops.load("evil@v1", allow_pickle=True), PICKLED)
    assert_frame_equal(mlops.load(ref, allow_pickle=True), PICKLED)
    assert marker.exists()  # the caller opted in: the pickle ran, as they allowed


@pytest.fixture(scope="module")
def filled_project(
    template_store: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    project = tmp_path_factory.mktemp("snapshot-faults") / "project"
    populate(project, template_store)
    return project


@pytest.fixture
def project(filled_project: Path, jp_root_dir: Path) -> Path:
    return Path(shutil.copytree(filled_project, jp_root_dir / "project"))


async def test_the_server_never_unpickles_a_promote_reference(
    jp_fetch: Any, project: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned-by-server"
    with project_settings(project):
        ref = craft_pickle_snapshot(marker)
    for dry_run in (True, False):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(
                "jupyter-mlops",
                "api",
                "models",
                "churn",
                "promote",
                method="POST",
                params={"path": "project/train.ipynb"},
                body=json.dumps(
                    {
                        "alias": "staging",
                        "version": 1,
                        "reference": ref,
                        "current": "customers@v2",
                        "max_drift_share": 0.5,
                        "dry_run": dry_run,
                    }
                ),
            )
        assert info.value.code == 400
        message = json.loads(info.value.response.body)["message"]
        assert "pickled column 'mixed'" in message and "allow_pickle" in message
    assert not marker.exists()  # nothing ran inside the server process


async def test_a_damaged_version_file_is_a_row_not_a_failed_list(
    jp_fetch: Any, project: Path
) -> None:
    damaged = project / ".mlops" / "snapshots" / version_key("customers", 1)
    os.chmod(damaged, 0o644)
    damaged.write_bytes(b"")
    response = await jp_fetch(
        "jupyter-mlops", "api", "snapshots", params={"path": "project/train.ipynb"}
    )
    (customers,) = json.loads(response.body)["names"]
    first, second = customers["versions"]
    assert (first["version"], second["version"]) == (1, 2)
    assert "empty" in first["error"] and second["error"] is None and second["rows"] == 500
    with project_settings(project):
        listing = mlops.snapshots()
        assert list(listing["ref"]) == ["customers@v1", "customers@v2"]
        assert "empty" in listing.loc[0, "error"] and listing.loc[1, "error"] == ""
        report = mlops.verify_snapshots()
        assert len(report.problems) == 1 and "v000001.json" in report.problems[0].object
        assert report.snapshots == 2
        with pytest.raises(MLOpsUsageError, match=r"v000001\.json.*damaged"):
            mlops.gc_snapshots()


# --- tampered manifests ---------------------------------------------------------------------------


def test_an_altered_schema_or_stats_is_caught_by_verify_and_named_on_load() -> None:
    import pyarrow as pa

    df = pd.DataFrame({"x": np.linspace(0, 1, 50), "k": np.arange(50)})
    snap = mlops.snapshot(df, "tampered")
    path = STORE / "manifests" / f"{snap.id}.json"
    original = json.loads(path.read_text())
    os.chmod(path, 0o644)

    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(original["schema"])))
    wrong = schema.set(0, pa.field("x", pa.int64()))
    altered = {**original, "schema": base64.b64encode(wrong.serialize().to_pybytes()).decode()}
    path.write_bytes(json_bytes(altered))
    report = mlops.verify_snapshots()
    assert not report.ok and "schema" in repr(report) and "'x'" in repr(report)
    with pytest.raises(mlops.SnapshotCorrupted, match="schema"):
        mlops.load("tampered")

    columns = json.loads(json.dumps(original["columns"]))
    columns[0]["stats"]["mean"] = 42.0
    path.write_bytes(json_bytes({**original, "columns": columns}))
    report = mlops.verify_snapshots()
    assert len(report.problems) == 1 and "stats" in report.problems[0].problem
    assert "mean" in report.problems[0].problem

    path.write_bytes(json_bytes({**original, "bytes": original["bytes"] + 1}))
    (problem,) = mlops.verify_snapshots().problems
    assert f"{original['bytes'] + 1} bytes" in problem.problem

    path.write_bytes(json_bytes(original))
    assert mlops.verify_snapshots().ok
    assert_frame_equal(mlops.load("tampered"), df)
