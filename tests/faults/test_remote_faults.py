"""A tracking server that goes away while a real kernel's ``%%track`` cell logs to it.

The server is killed (SIGKILL: connections refused) or frozen (SIGSTOP: connections accepted,
never answered) between two halves of a cell's logging. The cell must end in bounded time with
one line naming the server, keep every value and the run's end on disk, and, once the server is
back, the next run started on it writes them: nothing is lost and the run ends FINISHED.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from jupyter_client.manager import start_new_kernel
from pandas.testing import assert_frame_equal

import jupyter_mlops as mlops
from jupyter_mlops.tracking import spill
from tests.engines import Engine, held, mlflow_engine
from tests.kernel_support import ok, run_cell

HTTP_TIMEOUT_S = 3  # MLFLOW_HTTP_REQUEST_TIMEOUT in the kernel: our bound per call
RECOVERY_TIMEOUT_S = 60  # once the server is back: a busy machine may take seconds to answer
HALF = 1000
PROCESS_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def outage_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A server of this module's own: its tests kill and restart it on the same port.

    Launched only: the kernel starts meanwhile, then waits for it (both take seconds)."""
    yield from held(mlflow_engine(tmp_path_factory.mktemp("outage-server")).launch())


@pytest.fixture(scope="module")
def kernel(
    outage_server: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Path]]:
    cwd = tmp_path_factory.mktemp("outage-kernel")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_"))}
    env.update(
        MLOPS_HOME=str(cwd / ".mlops"),
        MLFLOW_TRACKING_URI=outage_server.url,
        MLFLOW_HTTP_REQUEST_TIMEOUT=str(HTTP_TIMEOUT_S),
    )
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=env)
    try:
        ok(kc, "%load_ext jupyter_mlops\nimport jupyter_mlops as mlops, time, pathlib")
        outage_server.wait_ready()
        yield kc, cwd
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def restarted(engine: Engine) -> Engine:
    """The same server (database, artifacts, port) started again."""
    again = mlflow_engine(engine.log.parent, int(engine.url.rsplit(":", 1)[1]))
    engine.process = again.start().process
    return engine


def wait_for(condition: Any, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("fault", ["SIGKILL", "SIGSTOP"])
def test_a_server_lost_mid_cell_costs_one_line_and_no_value(
    kernel: tuple[Any, Path], outage_server: Engine, fault: str
) -> None:
    from mlflow.tracking import MlflowClient

    kc, cwd = kernel
    flag = cwd / f"go-{fault}"
    server = MlflowClient(tracking_uri=outage_server.url)
    cell = (
        f"%%track outage-{fault} --experiment outages\n"
        "run_id = mlflow.active_run().info.run_id\n"
        f"for i in range({HALF}):\n"
        "    mlops.log(x=i)\n"
        "deadline = time.monotonic() + 60\n"
        f"while not pathlib.Path({str(flag)!r}).exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        f"for i in range({HALF}, {2 * HALF}):\n"
        "    mlops.log(x=i)\n"
    )
    ok(kc, f"import mlflow, os\nos.environ['MLFLOW_HTTP_REQUEST_TIMEOUT'] = '{HTTP_TIMEOUT_S}'")
    sent = kc.execute(cell, stop_on_error=False)

    def first_half_written() -> bool:
        runs = server.search_runs(
            [e.experiment_id for e in server.search_experiments()],
            filter_string=f"attributes.run_name = 'outage-{fault}'",
        )
        return bool(runs) and len(server.get_metric_history(runs[0].info.run_id, "x")) == HALF

    wait_for(first_half_written, "the first half is on the server")
    if fault == "SIGKILL":
        outage_server.kill()
    else:
        outage_server.signal(signal.SIGSTOP)
    flag.touch()
    started = time.monotonic()
    reply = kc.get_shell_msg(timeout=120)
    while reply["parent_header"].get("msg_id") != sent:
        reply = kc.get_shell_msg(timeout=120)
    took = time.monotonic() - started
    content = reply["content"]
    assert content["status"] == "error" and content["ename"] == "TrackingServerUnavailable"
    assert len(content["traceback"]) == 1, content["traceback"]  # one line, no traceback
    assert outage_server.url in content["evalue"] and "kept in" in content["evalue"]
    # The writer's call in flight and the final one, each bounded (connect + read).
    assert took < 4 * 2 * HTTP_TIMEOUT_S + 20, took

    run_id = ok(kc, "print(run_id)").strip()
    folder = spill.folder_for_server(cwd / ".mlops", outage_server.url)
    assert [p.name for p in folder.glob("*.json")] == [f"{run_id}-{kernel_pid(kc)}.json"]

    if fault == "SIGKILL":
        restarted(outage_server)
    else:
        outage_server.signal(signal.SIGCONT)
    ok(kc, f"os.environ['MLFLOW_HTTP_REQUEST_TIMEOUT'] = '{RECOVERY_TIMEOUT_S}'")
    ok(kc, "%%track after-outage --experiment outages\nmlops.log(y=1)")
    assert not list(folder.glob("*.json")), "the kept values were not written"
    run = server.get_run(run_id)
    assert run.info.status == "FINISHED"
    values = sorted(m.value for m in server.get_metric_history(run_id, "x"))
    assert values == [float(i) for i in range(2 * HALF)]


def kernel_pid(kc: Any) -> int:
    return int(ok(kc, "import os; print(os.getpid())").strip())


def test_a_server_down_at_the_start_is_one_line_and_opens_nothing(
    kernel: tuple[Any, Path], outage_server: Engine
) -> None:
    kc, _ = kernel
    ok(kc, f"import os\nos.environ['MLFLOW_HTTP_REQUEST_TIMEOUT'] = '{HTTP_TIMEOUT_S}'")
    outage_server.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = run_cell(kc, "%%track never --experiment outages\nx = 1", timeout=120)
        took = time.monotonic() - started
    finally:
        outage_server.signal(signal.SIGCONT)
    assert result.ename == "TrackingServerUnavailable" and len(result.traceback) == 1
    assert took < 2 * HTTP_TIMEOUT_S + 20, took
    assert ok(kc, "print(mlflow.active_run())").strip() == "None"


# --- S3 (moto): a save killed mid-upload, and gc while a save runs -----------------------------

SAVER = """
    import os, signal, sys
    import numpy as np, pandas as pd
    import jupyter_mlops as mlops
    from jupyter_mlops.snapshots import packs

    columns, seed, pack_bytes, fault = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    packs.PACK_BYTES = int(pack_bytes)
    if fault == "before-index":  # the pack is up; the process dies before its index goes up
        packs.Packs.publish_index = lambda self, *a: os.kill(os.getpid(), signal.SIGKILL)
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"c{i}": rng.normal(size=50) for i in range(columns)})
    print("ready", flush=True)
    print(mlops.snapshot(frame, "big").version, flush=True)
"""
COLUMNS = 150  # one object per column: with one cell per pack, a save is 300 PUTs


def expected_big(seed: int, columns: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f"c{i}": rng.normal(size=50) for i in range(columns)})


def start_saver(
    tmp: Path, seed: int, columns: int = COLUMNS, pack_bytes: int = 1, fault: str = ""
) -> subprocess.Popen[str]:
    script = tmp / "saver.py"
    script.write_text(textwrap.dedent(SAVER))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(columns), str(seed), str(pack_bytes), fault or "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def s3_keys(url: str, under: str) -> set[str]:
    import fsspec

    fs = fsspec.filesystem("s3", use_listings_cache=False)
    root = url.removeprefix("s3://")
    return {k[len(root) + 1 :] for k in fs.find(f"{root}/{under}")}


def referenced_packs(url: str) -> set[str]:
    """The packs holding an object some version's manifest names (each such object in one)."""
    import json

    import fsspec

    from jupyter_mlops.context import current_settings
    from jupyter_mlops.snapshots import service
    from jupyter_mlops.snapshots.verify import object_ids

    store = service.open_store(current_settings())
    named = {o for r in store.all_records() for o, _ in object_ids(store.manifest(r["snapshot"]))}
    fs = fsspec.filesystem("s3", use_listings_cache=False)
    root = url.removeprefix("s3://")
    found, where = set(), {}
    for key in s3_keys(url, "pack-indexes"):
        index = json.loads(fs.cat_file(f"{root}/{key}"))
        where.update(dict.fromkeys(index["objects"], f"packs/{index['pack']}"))
    for object_id in named:
        assert object_id in where, f"object {object_id} is in no pack"
        found.add(where[object_id])
    return found


@pytest.fixture
def s3_store(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"s3://{s3_bucket}/snapshots"
    monkeypatch.setenv("MLOPS_SNAPSHOT_STORE", url)
    mlops.snapshot(pd.DataFrame({"seed": [1, 2]}), "seed")  # the store exists
    return url


def killed(saver: subprocess.Popen[str], when: Any = None) -> None:
    """SIGKILL ``saver`` once ``when()`` holds (or wait for it to die by itself)."""
    try:
        if when is not None:
            wait_for(when, "objects uploaded")
            saver.send_signal(signal.SIGKILL)
        saver.wait(PROCESS_TIMEOUT_S)
    finally:
        saver.kill()
        saver.communicate(timeout=PROCESS_TIMEOUT_S)
    assert saver.returncode == -signal.SIGKILL


def test_a_save_killed_mid_upload_leaves_a_loadable_store_and_gc_reclaims_it(
    s3_store: str, tmp_path: Path
) -> None:
    before = s3_keys(s3_store, "packs")
    saver = start_saver(tmp_path, seed=1)
    killed(saver, lambda: len(s3_keys(s3_store, "packs") - before) >= 10)
    partial = s3_keys(s3_store, "packs") - before  # some packs, no manifest, no version
    assert 10 <= len(partial) < COLUMNS + 1, len(partial)
    assert s3_keys(s3_store, "locks"), "the killed save's lease should be left behind"
    assert list(mlops.snapshots()["ref"]) == ["seed@v1"]  # loadable, no half version
    assert_frame_equal(mlops.load("seed"), pd.DataFrame({"seed": [1, 2]}))

    again = mlops.snapshot(pd.DataFrame({"after": [3]}), "after")  # the next save works
    assert again.version == 1
    swept = mlops.gc_snapshots()  # the dead writer's lease and packs go at once
    assert swept.removed["packs"] == len(partial)
    assert s3_keys(s3_store, "packs") == referenced_packs(s3_store)
    assert len(s3_keys(s3_store, "pack-indexes")) == len(s3_keys(s3_store, "packs"))
    assert s3_keys(s3_store, "locks") == set()
    assert mlops.verify_snapshots().ok


def test_a_save_killed_between_a_pack_and_its_index_leaves_an_orphan_gc_removes(
    s3_store: str, tmp_path: Path
) -> None:
    before = s3_keys(s3_store, "packs")
    killed(start_saver(tmp_path, seed=3, columns=20, pack_bytes=4096, fault="before-index"))
    orphans = s3_keys(s3_store, "packs") - before  # full packs go up from several threads
    assert orphans and len(s3_keys(s3_store, "pack-indexes")) == len(before)
    assert list(mlops.snapshots()["ref"]) == ["seed@v1"]
    assert_frame_equal(mlops.load("seed"), pd.DataFrame({"seed": [1, 2]}))
    again = mlops.snapshot(expected_big(3, columns=20), "big")  # the same cells, packed anew
    assert again.version == 1 and again.objects_written == 20
    swept = mlops.gc_snapshots()
    assert swept.removed["packs"] == len(orphans) and not orphans & s3_keys(s3_store, "packs")
    assert s3_keys(s3_store, "packs") == referenced_packs(s3_store)  # nothing names a lost cell
    assert_frame_equal(mlops.load("big@v1"), expected_big(3, columns=20))
    assert mlops.verify_snapshots().ok


def test_gc_during_a_save_waits_and_the_saves_objects_survive(
    s3_store: str, tmp_path: Path
) -> None:
    saver = start_saver(tmp_path, seed=2, columns=40)
    try:
        wait_for(lambda: bool(s3_keys(s3_store, "locks/save")), "the save holds its lease")
        swept = mlops.gc_snapshots()  # queued behind the save: it sweeps once the save is done
        assert mlops.snapshots("big")["ref"].tolist() == ["big@v1"]  # published before gc swept
        out, err = saver.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        saver.kill()
    assert saver.returncode == 0, err
    assert out.strip() == "1"
    assert swept.removed["objects"] == swept.removed["packs"] == 0
    assert_frame_equal(mlops.load("big@v1"), expected_big(2, columns=40))
    assert mlops.verify_snapshots().ok
