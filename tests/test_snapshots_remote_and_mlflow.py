"""The fsspec backend (``memory://``) and the MLflow dataset-input link on a real SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.tracking import active
from jupyter_mlops.tracking.client import mlflow_client


@pytest.fixture
def memory_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import fsspec

    url = "memory://snapshot-tests/store"
    monkeypatch.setenv("MLOPS_SNAPSHOT_STORE", url)
    yield url
    fsspec.filesystem("memory").rm("/snapshot-tests", recursive=True)


def test_memory_store_round_trip(memory_store: str, tmp_path: Path) -> None:
    import fsspec

    df = pd.DataFrame({"a": np.arange(100), "s": [f"v{i}" for i in range(100)]})
    v1 = mlops.snapshot(df, "remote")
    assert v1.location == f"{memory_store}/manifests/{v1.id}.json"
    assert mlops.snapshot(df, "remote").bytes_written == 0
    v2 = mlops.snapshot(df.assign(a=df.a * 2), "remote")
    assert_frame_equal(mlops.load("remote@v1"), df)
    assert list(mlops.snapshots()["ref"]) == ["remote@v1", "remote@v2"]
    assert [c.column for c in mlops.diff("remote@v1", "remote@v2").changes] == ["a"]
    assert mlops.verify_snapshots() and v2.version == 2

    fs = fsspec.filesystem("memory")
    refs = fs.find("/snapshot-tests/store/refs/remote")
    assert [r.rsplit("/", 1)[-1] for r in refs] == ["v000001.json", "v000002.json"]
    assert not Path(".mlops/snapshots").exists()  # nothing went to the local default store

    (tmp_path / "f.txt").write_text("hello")
    mlops.snapshot(tmp_path / "f.txt", "afile")
    assert mlops.load("afile").read_text() == "hello"

    cell = json.loads(fs.cat_file(f"/snapshot-tests/store/manifests/{v1.id}.json"))
    victim = cell["content"]["columns"][0]["cells"][0]
    key = f"/snapshot-tests/store/objects/{victim[:2]}/{victim[2:]}"
    data = bytearray(fs.cat_file(key))
    data[-40] ^= 0xFF
    fs.pipe_file(key, bytes(data))
    with pytest.raises(mlops.SnapshotCorrupted, match=victim[2:]):
        mlops.load("remote@v1")


def test_pickled_columns_from_a_shared_store_need_consent(memory_store: str) -> None:
    from jupyter_mlops.errors import MLOpsUsageError

    df = pd.DataFrame({"a": [1, 2], "mixed": pd.array([1, "x"], dtype=object)})
    mlops.snapshot(df, "opaque", allow_pickle=True)
    with pytest.raises(MLOpsUsageError, match=r"pickled column 'mixed'.*allow_pickle=True"):
        mlops.load("opaque")
    assert_frame_equal(mlops.load("opaque", allow_pickle=True), df)


@pytest.fixture
def open_run() -> Iterator[active.ActiveRun]:
    uri = current_settings().tracking_uri
    client = mlflow_client(uri)
    run = client.create_run(experiment_id="0", run_name="uses-data")
    handle = active.ActiveRun(run.info.run_id, uri)
    active.push(handle)
    yield handle
    active.pop(handle)


def test_snapshots_saved_and_loaded_in_a_run_become_its_inputs(open_run: active.ActiveRun) -> None:
    df = pd.DataFrame({"a": np.arange(20_000), "b": np.arange(20_000) % 7 == 0})
    saved = mlops.snapshot(df, "train")
    changed = df.copy()
    changed.loc[15_000, "b"] = not changed.loc[15_000, "b"]  # beyond MLflow's 10,000-row digest
    mlops.snapshot(changed, "train")
    mlops.load("train@v1")

    client = mlflow_client(open_run.tracking_uri)
    run = client.get_run(open_run.run_id)
    inputs = run.inputs.dataset_inputs
    by_name = {}
    for item in inputs:
        tags = {t.key: t.value for t in item.tags}
        by_name.setdefault(item.dataset.name, []).append((item.dataset, tags))
    assert set(by_name) == {"train@v1", "train@v2"}
    dataset, tags = by_name["train@v1"][0]
    assert dataset.digest == f"b3:{saved.id[:32]}"
    assert by_name["train@v2"][0][0].digest != dataset.digest
    assert json.loads(dataset.source)["uri"] == saved.location
    assert saved.location.startswith("file://") and dataset.source_type == "local"
    assert json.loads(dataset.profile)["num_rows"] == 20_000
    assert tags["mlflow.data.context"] == "training" and tags["snapshot.id"] == saved.id
    operations = sorted(t["snapshot.operation"] for _, t in by_name["train@v1"])
    assert operations in (["loaded", "saved"], ["saved"])  # MLflow may fold identical inputs
    assert run.data.tags["snapshot.train"].startswith("train@v1#")


def test_a_snapshot_outside_a_run_never_imports_mlflow() -> None:
    code = (
        "import sys, jupyter_mlops as mlops\n"
        "assert not {'pandas', 'pyarrow', 'blake3'} & set(sys.modules), 'heavy import'\n"
        "import pandas as pd\n"
        "mlops.snapshot(pd.DataFrame({'a': [1]}), 'quiet')\n"
        "print('mlflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
