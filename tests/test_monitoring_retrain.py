"""A failing monitor gate runs the retraining notebook through papermill; its own %promote gate
promotes a new version; trigger -> run -> version -> decision is recorded."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

import jupyter_mlops as mlops
from jupyter_mlops import records
from jupyter_mlops.context import current_settings
from jupyter_mlops.errors import GateFailed
from jupyter_mlops.tracking.client import mlflow_client
from tests.monitoring_support import START, trained_model, write_traffic
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
    write_traffic(hours=4, requests_per_hour=30, rows_per_request=20, shifted=(2,))
    book = notebook(*RETRAIN)
    book.cells[1].metadata["tags"] = ["parameters"]
    path = store.parent / "retrain.ipynb"
    nbformat.write(book, path)
    with pytest.raises(GateFailed) as failed:
        mlops.monitor(
            "churn@prod",
            since=START.isoformat(),
            fail_on="window.share_drifted > 0.5",
            retrain=str(path),
            retrain_params={"threshold": 0.9},
        )
    result = failed.value.monitor  # type: ignore[attr-defined]
    assert result.retrain.succeeded, result.retrain.error
    assert result.retrain.parameters["window"] == "2026-11-30T02:00:00+00:00"
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
    kept = [a.path for a in client.list_artifacts(result.run_id, records.RETRAIN_FOLDER)]
    assert len(kept) == 1 and kept[0].endswith(".ipynb")  # the executed notebook
