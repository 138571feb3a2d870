"""Snapshots on a real S3 API: moto's standalone server, reached through s3fs as users reach MinIO
or AWS (``AWS_ENDPOINT_URL`` and keys in the environment, ``snapshot_store = "s3://..."``).

The server starts once per session (tests/engines.py); every test has a bucket of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import jupyter_mlops as mlops

PROCESS_TIMEOUT_S = 120


@pytest.fixture
def s3_store(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"s3://{s3_bucket}/snapshots"
    monkeypatch.setenv("MLOPS_SNAPSHOT_STORE", url)
    return url


def keys(url: str, under: str) -> list[str]:
    import fsspec

    fs = fsspec.filesystem("s3", use_listings_cache=False)
    root = url.removeprefix("s3://")
    return sorted(k[len(root) + 1 :] for k in fs.find(f"{root}/{under}"))


def test_save_load_list_diff_verify_and_gc_on_s3(s3_store: str, tmp_path: Path) -> None:
    import fsspec

    from jupyter_mlops.context import current_settings
    from jupyter_mlops.snapshots import service

    assert type(service.open_store(current_settings()).backend).__name__ == "S3Backend"
    df = pd.DataFrame({"a": np.arange(500), "s": [f"v{i}" for i in range(500)]})
    v1 = mlops.snapshot(df, "remote")
    assert v1.location == f"{s3_store}/manifests/{v1.id}.json"
    assert mlops.snapshot(df, "remote").bytes_written == 0  # deduplicated on the server
    v2 = mlops.snapshot(df.assign(a=df.a * 2), "remote")
    assert_frame_equal(mlops.load("remote@v1"), df)
    assert_frame_equal(mlops.load(v2.ref), df.assign(a=df.a * 2))
    assert list(mlops.snapshots()["ref"]) == ["remote@v1", "remote@v2"]
    assert [c.column for c in mlops.diff("remote@v1", "remote@v2").changes] == ["a"]
    assert keys(s3_store, "refs") == ["refs/remote/v000001.json", "refs/remote/v000002.json"]
    assert not Path(".mlops/snapshots").exists()  # nothing went to the local default store

    (tmp_path / "f.txt").write_text("hello")
    mlops.snapshot(tmp_path / "f.txt", "afile")
    assert mlops.load("afile").read_text() == "hello"
    assert mlops.verify_snapshots().ok
    swept = mlops.gc_snapshots()
    assert sum(swept.removed.values()) == 0 and keys(s3_store, "locks") == []

    # Small objects are packed: a few PUTs per save, each cell read back by a ranged GET.
    assert keys(s3_store, "objects") == []
    packs = keys(s3_store, "packs")
    assert [f"pack-indexes/{p.split('/')[1]}.json" for p in packs] == keys(s3_store, "pack-indexes")
    fs = fsspec.filesystem("s3", use_listings_cache=False)
    root = s3_store.removeprefix("s3://")
    indexes = [json.loads(fs.cat_file(f"{root}/{k}")) for k in keys(s3_store, "pack-indexes")]
    length, offset, victim, pack = max(  # the largest object: a cell, not the 5-byte file
        (n, at, object_id, f"{root}/packs/{i['pack']}")
        for i in indexes
        for object_id, (at, n) in i["objects"].items()
    )
    data = bytearray(fs.cat_file(pack))
    data[offset + length - 40] ^= 0xFF
    fs.pipe_file(pack, bytes(data))
    report = mlops.verify_snapshots()
    assert not report.ok and victim[2:] in repr(report)  # the damaged cell, by its id


def test_a_store_of_loose_objects_keeps_loading_and_gc_sweeps_both(
    s3_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store written before packs (one object per cell) loads; new cells then go to packs."""
    from jupyter_mlops.snapshots import store as backends

    df = pd.DataFrame({"a": np.arange(300), "b": np.arange(300) * 0.5})
    with monkeypatch.context() as patch:
        patch.setattr(backends, "PACKED_MAX", -1)  # every object loose, as before packs
        mlops.snapshot(df, "old")
        mlops.snapshot(pd.DataFrame({"z": np.arange(300) + 7}), "gone")
    assert len(keys(s3_store, "objects")) == 3 and keys(s3_store, "packs") == []
    new = mlops.snapshot(df.assign(c=df.a + 1), "old")  # a and b are reused where they lie
    assert new.objects_written == 1 and len(keys(s3_store, "packs")) == 1
    assert_frame_equal(mlops.load("old@v1"), df)
    assert_frame_equal(mlops.load("old@v2"), df.assign(c=df.a + 1))
    mlops.remove_snapshot("gone@v1")
    mlops.remove_snapshot("old@v2")  # the pack's one cell: the pack goes whole
    swept = mlops.gc_snapshots()
    assert (swept.removed["objects"], swept.removed["packs"]) == (1, 1)
    assert keys(s3_store, "packs") == keys(s3_store, "pack-indexes") == []
    assert_frame_equal(mlops.load("old@v1"), df)
    assert mlops.verify_snapshots().ok


def test_a_version_saved_by_another_process_is_seen_at_once(s3_store: str) -> None:
    """s3fs answers from cached listings; the store must not (a kernel sees new versions)."""
    mlops.snapshot(pd.DataFrame({"a": [1]}), "seen")
    assert list(mlops.snapshots()["ref"]) == ["seen@v1"]
    code = (
        "import pandas as pd, jupyter_mlops as mlops\n"
        "mlops.snapshot(pd.DataFrame({'a': [2]}), 'seen')\n"
        "mlops.snapshot(pd.DataFrame({'b': [3]}), 'other')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr
    assert list(mlops.snapshots()["ref"]) == ["other@v1", "seen@v1", "seen@v2"]
    assert_frame_equal(mlops.load("seen"), pd.DataFrame({"a": [2]}))


WRITER = """
    import pathlib, sys, time
    import pandas as pd
    import jupyter_mlops as mlops

    writer, go = int(sys.argv[1]), pathlib.Path(sys.argv[2])
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    for k in range({rounds}):
        saved = mlops.snapshot(pd.DataFrame({{"writer": [writer] * 3, "k": [k] * 3}}), "shared")
        print(saved.version, writer, k, flush=True)
"""


def test_two_processes_saving_one_name_at_once_lose_no_version(
    s3_store: str, tmp_path: Path
) -> None:
    rounds = 4
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER.format(rounds=rounds)))
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, str(script), str(w), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for w in (1, 2)
    ]
    try:
        for proc in writers:  # both imported everything: they start saving together
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        go.touch()
        outputs = [proc.communicate(timeout=PROCESS_TIMEOUT_S) for proc in writers]
    finally:
        for proc in writers:
            proc.kill()
    saved = {}
    for proc, (out, err) in zip(writers, outputs, strict=True):
        assert proc.returncode == 0, err
        for line in out.strip().splitlines():
            version, writer, k = map(int, line.split())
            assert version not in saved, f"v{version} handed to two writers"
            saved[version] = (writer, k)
    assert sorted(saved) == list(range(1, 2 * rounds + 1))
    for version, (writer, k) in saved.items():
        expected = pd.DataFrame({"writer": [writer] * 3, "k": [k] * 3})
        assert_frame_equal(mlops.load(f"shared@v{version}"), expected)
    assert mlops.verify_snapshots().ok


def test_an_endpoint_from_fsspec_configuration_works_too(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without AWS_ENDPOINT_URL: fsspec's own config (FSSPEC_S3_* env or ~/.config/fsspec)."""
    import fsspec.config

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": endpoint})
    monkeypatch.setenv("MLOPS_SNAPSHOT_STORE", f"s3://{s3_bucket}/configured")
    saved = mlops.snapshot(pd.DataFrame({"x": [1.5, 2.5]}), "configured")
    assert_frame_equal(mlops.load(saved.ref), pd.DataFrame({"x": [1.5, 2.5]}))
