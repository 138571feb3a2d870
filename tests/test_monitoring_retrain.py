"""End to end on CPU: requests through a real %serve endpoint, a failing monitor gate runs the
retraining notebook through papermill, its own %promote gate promotes a new version, the endpoint
follows the alias, and trigger -> run -> version -> decision is recorded."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import jupyter_mlops as mlops
from jupyter_mlops import records
from jupyter_mlops.context import current_settings
from jupyter_mlops.errors import GateFailed
from jupyter_mlops.serving.launch import stop
from jupyter_mlops.tracking.client import mlflow_client
from tests.monitoring_support import FEATURES, trained_model, training_frame
from tests.notebooks import notebook

REPO = Path(__file__).resolve().parent.parent
RETRAIN = [
    "%load_ext jupyter_mlops",  # papermill's parameters become params of the tracked runs
    "window = ''\nreason = ''\ntrigger_run = ''\nthreshold = 0.5",
    "import jupyter_mlops as mlops\n"
    "from tests.monitoring_support import FEATURES, AgeRule, training_frame\n"
    "train = training_frame(seed=5)\n"
    "with mlops.track('retrain'):\n"
    "    mlops.snapshot(train, 'churn-train')\n"
    "    mlops.log(accuracy=0.95)\n"
    "version = mlops.register(AgeRule(), 'churn', input_example=train[list(FEATURES)].head(3))",
    "mlops.promote(f'churn/{version.version}', to='prod', "
    "require=f'metrics.accuracy >= {threshold}')",
]


def test_a_failing_gate_retrains_and_the_notebooks_gate_promotes(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    trained_model()
    book = notebook(*RETRAIN)
    book.cells[1].metadata["tags"] = ["parameters"]
    path = store.parent / "retrain.ipynb"
    nbformat.write(book, path)
    started = time.time()
    endpoint = mlops.serve("churn@prod")
    try:
        shifted = training_frame(400, seed=9)[list(FEATURES)]
        shifted[["age", "income"]] += [25, 40]
        for part in range(0, 400, 20):  # 20 requests of 20 rows, all far from the training data
            assert post(endpoint.url, shifted.iloc[part : part + 20]) == "1"
        deadline = time.monotonic() + 60
        while len(mlops.traffic("churn@prod")) < 400 and time.monotonic() < deadline:
            time.sleep(0.3)  # the log is flushed every couple of seconds
        with pytest.raises(GateFailed) as failed:
            mlops.monitor(
                "churn@prod",
                since=f"{time.time() - started + 60:.0f}s",
                window="1d",
                fail_on="window.share_drifted > 0.5",
                retrain=str(path),
                retrain_params={"threshold": 0.9},
            )
        deadline = time.monotonic() + 60
        while serving_version(endpoint.url) != "2" and time.monotonic() < deadline:
            time.sleep(0.2)  # the endpoint follows the alias the notebook moved
        assert post(endpoint.url, shifted.head(3)) == "2"
    finally:
        stop(current_settings(), "churn")
    result = failed.value.monitor  # type: ignore[attr-defined]
    assert result.retrain.succeeded, result.retrain.error
    assert result.windows["requests"].sum() == 20 and result.drifted_windows
    assert result.retrain.parameters["window"] == result.drifted_windows[0].isoformat()
    assert "window.share_drifted > 0.5" in result.retrain.parameters["reason"]
    client = mlflow_client(current_settings().tracking_uri)
    assert client.get_registered_model("churn").aliases["prod"] in (2, "2")  # the notebook promoted
    version = client.get_model_version("churn", "2")
    run = client.get_run(version.run_id)
    assert run.data.params["trigger_run"] == result.run_id  # trigger -> run
    assert run.data.params["threshold"] == "0.9"
    assert run.data.tags[records.TAG_MONITOR_TRIGGER] == result.run_id
    lineage = mlops.lineage("churn/2").to_json()
    gates = [n for n in lineage["nodes"] if n["kind"] == "gate"]
    assert any(g["attrs"]["decision"] == "promoted" for g in gates)  # version -> decision
    edges = {(e["source"], e["relation"], e["target"]) for e in lineage["edges"]}
    trigger = f"run:{result.run_id}"
    assert (trigger, "triggered", f"run:{version.run_id}") in edges  # trigger -> run
    kept = [a.path for a in client.list_artifacts(result.run_id, records.RETRAIN_FOLDER)]
    assert len(kept) == 1 and kept[0].endswith(".ipynb")  # the executed notebook


def post(url: str, rows: pd.DataFrame) -> str:
    """Score rows; returns the version that answered."""
    body = json.dumps({"dataframe_split": rows.to_dict(orient="split", index=False)})
    request = urllib.request.Request(
        f"{url}/invocations", data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.headers[records.HEADER_MODEL_VERSION])


def serving_version(url: str) -> str:
    with urllib.request.urlopen(f"{url}/ping", timeout=10) as response:
        return str(response.headers[records.HEADER_MODEL_VERSION])
