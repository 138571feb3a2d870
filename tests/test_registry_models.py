"""``%register``: model flavors, registration on the SQLite store, links to run and data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import jupyter_mlops as mlops
from jupyter_mlops.errors import MLOpsUsageError
from jupyter_mlops.registry.results import ModelVersion
from jupyter_mlops.tracking.run import TAG_SUPERSEDED
from tests.registry_support import client, make_run, tiny_torch

pytestmark = pytest.mark.usefixtures("registry_store")


def test_torch_module_is_logged_registered_and_linked_to_run_and_snapshots(
    registry_store: Path,
) -> None:
    import torch

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4, 5, 6]})
    with mlops.track("train-torch", params={"lr": 0.1}) as run:
        snap = mlops.snapshot(frame, "reg_train")
        mlops.log(val_acc=0.9)
    net = tiny_torch()
    version = mlops.register(net, "reg-torch")

    assert isinstance(version, ModelVersion)
    assert (version.name, version.version, version.flavor) == ("reg-torch", 1, "pytorch")
    assert version.run_id == run.run_id and version.snapshots == (snap.ref,)
    stored = client(registry_store).get_model_version("reg-torch", "1")
    assert stored.run_id == run.run_id
    assert stored.tags["mlops.run_id"] == run.run_id
    assert stored.tags["mlops.snapshots"] == snap.ref
    assert stored.tags["mlops.snapshot_ids"] == snap.id
    assert stored.tags["mlops.flavor"] == "pytorch"
    assert stored.tags["mlops.registered_by"]
    # the run lists the logged model among its outputs; pip requirements are explicit pins
    outputs = client(registry_store).get_run(run.run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [version.model_id]
    folder = Path(client(registry_store).get_model_version_download_uri("reg-torch", "1")[7:])
    requirements = (folder / "requirements.txt").read_text().split()
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements
    assert any(r.startswith("mlflow-skinny==") for r in requirements)

    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    expected = net(torch.from_numpy(x)).detach().numpy()
    loaded = mlops.load_model("reg-torch/1")
    np.testing.assert_allclose(loaded.predict(x), expected, rtol=1e-6)
    native = mlops.load_model("reg-torch", flavor="pytorch")
    np.testing.assert_allclose(native(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-6)
    assert "model 'reg-torch' version 1 (pytorch) from run 'train-torch'" in repr(version)
    assert f"input snapshots: {snap.ref}" in repr(version)


def test_torch_with_input_example_is_exported_and_keeps_a_dynamic_batch() -> None:
    import torch

    make_run("train-pt2", val_acc=0.8)
    net = tiny_torch()
    version = mlops.register(net, "reg-pt2", input_example=torch.zeros(4, 3))
    loaded = mlops.load_model(f"reg-pt2/{version.version}")
    x = np.ones((7, 3), dtype=np.float32)
    np.testing.assert_allclose(
        loaded.predict(x), net(torch.from_numpy(x)).detach().numpy(), rtol=1e-5
    )


def test_callable_becomes_a_pyfunc_model() -> None:
    make_run("train-fn", val_acc=0.7)

    def double_sum(frame: pd.DataFrame) -> pd.Series:
        return frame.sum(axis=1) * 2

    example = pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, 0.5]})
    version = mlops.register(double_sum, "reg-fn", input_example=example)
    assert version.flavor == "pyfunc"
    predicted = mlops.load_model("reg-fn").predict(pd.DataFrame({"a": [1.0], "b": [2.0]}))
    assert list(np.asarray(predicted).ravel()) == [6.0]


def test_sklearn_estimator_uses_the_sklearn_flavor(registry_store: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(1).normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    estimator = LogisticRegression().fit(x, y)
    make_run("train-sklearn", val_acc=0.97)
    version = mlops.register(estimator, "reg-sklearn", input_example=x[:2])
    assert version.flavor == "sklearn"
    folder = Path(client(registry_store).get_model_version_download_uri("reg-sklearn", "1")[7:])
    assert any(
        r.startswith("scikit-learn==") for r in (folder / "requirements.txt").read_text().split()
    )
    np.testing.assert_array_equal(
        mlops.load_model("reg-sklearn/1").predict(x), estimator.predict(x)
    )
    native = mlops.load_model("reg-sklearn/1", flavor="sklearn")
    assert isinstance(native, LogisticRegression)


def test_saved_model_folder_is_registered_as_is(tmp_path: Path, registry_store: Path) -> None:
    import mlflow.pytorch
    import torch

    net = tiny_torch()
    folder = tmp_path / "saved"
    mlflow.pytorch.save_model(
        net, str(folder), pip_requirements=["torch"], serialization_format="pickle"
    )
    make_run("train-folder")
    version = mlops.register(str(folder), "reg-folder")
    assert version.flavor == "pytorch"
    assert (
        client(registry_store).get_model_version("reg-folder", "1").tags["mlops.flavor"]
        == "pytorch"
    )
    x = np.ones((2, 3), dtype=np.float32)
    expected = net(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(mlops.load_model("reg-folder/1").predict(x), expected, rtol=1e-6)
    with pytest.raises(MLOpsUsageError, match="not an MLflow model folder"):
        mlops.register(str(tmp_path), "reg-folder")


def test_default_run_is_the_open_run_else_the_newest_not_superseded(registry_store: Path) -> None:
    older = make_run("older", val_acc=0.5)
    newer = make_run("newer", val_acc=0.6)
    assert mlops.register(lambda df: df, "reg-default").run_id == newer
    client(registry_store).set_tag(newer, TAG_SUPERSEDED, "some-other-run")
    assert mlops.register(lambda df: df, "reg-default").run_id == older
    with mlops.track("open") as run:
        assert mlops.register(lambda df: df, "reg-default").run_id == run.run_id
    explicit = mlops.register(lambda df: df, "reg-default", run=older)
    assert (explicit.run_id, explicit.version) == (older, 4)


def test_register_refuses_bad_input_with_one_line_messages() -> None:
    with pytest.raises(MLOpsUsageError, match="has no run to attach the model to"):
        mlops.register(lambda df: df, "reg-bad")
    with pytest.raises(RuntimeError), mlops.track("broken"):
        raise RuntimeError("boom")
    with pytest.raises(MLOpsUsageError, match=r"'broken' .* ended FAILED.*--run RUN_ID"):
        mlops.register(lambda df: df, "reg-bad")
    make_run("fine")
    with pytest.raises(MLOpsUsageError, match="cannot register a int"):
        mlops.register(3, "reg-bad")
    with pytest.raises(MLOpsUsageError, match="model name 'a/b' is not valid"):
        mlops.register(lambda df: df, "a/b")
    with pytest.raises(MLOpsUsageError, match="no run 'nope'"):
        mlops.register(lambda df: df, "reg-bad", run="nope")
    with pytest.raises(MLOpsUsageError, match="no registered model 'never-made'"):
        mlops.load_model("never-made@champion")


def test_plain_mlflow_loads_by_alias_in_a_fresh_process(registry_store: Path) -> None:
    make_run("train-alias", val_acc=0.95)
    mlops.register(lambda df: df * 3, "reg-alias", input_example=pd.DataFrame({"a": [1.0, 2.0]}))
    assert mlops.promote("reg-alias", "champion", "metrics.val_acc > 0.9")
    script = (
        "import mlflow, pandas as pd\n"
        "m = mlflow.pyfunc.load_model('models:/reg-alias@champion')\n"
        "print(float(m.predict(pd.DataFrame({'a': [2.0]})).iloc[0, 0]))\n"
    )
    uri = f"sqlite:///{registry_store / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "6.0"
    assert list(
        mlops.load_model("reg-alias@champion").predict(pd.DataFrame({"a": [1.0]})).iloc[:, 0]
    ) == [3.0]


def test_register_magic_returns_the_version_and_renders_html(ip: Any) -> None:
    make_run("train-magic", val_acc=0.9)
    ip.user_ns["net"] = tiny_torch()
    version = ip.run_line_magic("register", "net --name reg-magic")
    assert isinstance(version, ModelVersion) and version.name == "reg-magic"
    html = ip.display_formatter.format(version)[0]["text/html"]
    assert "model reg-magic version 1" in html and "train-magic" in html
    same = ip.run_line_magic("mlops", "register net --name reg-magic")
    assert same.version == 2
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="%register: no_such_var is not an MLflow model folder"):
        ip.run_line_magic("register", "no_such_var --name reg-magic")
