"""An endpoint of a model registered with ``--features`` and served with
``--enforce-contract``: features logged as ``feature.<name>``, violations answered 422."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jupyter_mlops import records
from jupyter_mlops.config import Settings
from jupyter_mlops.contracts.service import expect
from jupyter_mlops.errors import MLOpsNotFound
from jupyter_mlops.registry.models import register
from jupyter_mlops.serving.deployments import list_deployments
from jupyter_mlops.serving.launch import serve, stop
from jupyter_mlops.serving.results import Deployment
from jupyter_mlops.serving.traffic import read_traffic
from jupyter_mlops.tracking.client import mlflow_client
from tests.serving_support import frame, post, split_body, store_settings

MODEL = "featured"
CONTRACT = "requests"


def sum_and_gap(raw: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"sum": raw["a"] + raw["b"], "gap": raw["a"] - raw["b"]})


@pytest.fixture(scope="module")
def settings(template_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from sklearn.linear_model import LogisticRegression

    settings = store_settings(template_store, tmp_path_factory.mktemp("features"))
    client = mlflow_client(settings.tracking_uri)
    run = client.create_run(client.create_experiment("features"))
    client.set_terminated(run.info.run_id)
    x = frame()
    estimator = LogisticRegression().fit(sum_and_gap(x), (x.a > x.b).astype(int))
    register(settings, estimator, MODEL, run_id=run.info.run_id, features=sum_and_gap)
    client.set_registered_model_alias(MODEL, "prod", "1")
    expect(settings, CONTRACT, ["a between 0 1", "b between 0 1"])
    return settings


@pytest.fixture(scope="module")
def endpoint(settings: Settings) -> Iterator[Deployment]:
    deployment = serve(settings, f"{MODEL}@prod", enforce_contract=CONTRACT)
    yield deployment
    if any(d.alive for d in list_deployments(settings)):
        stop(settings, deployment.name)


def test_a_request_breaking_the_contract_is_a_422_naming_the_rule(endpoint: Deployment) -> None:
    status, headers, content = post(endpoint.url, split_body([[0.5, 1.5]]))
    error = json.loads(content)
    assert status == 422 and error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "b between 0 1" in error["message"] and CONTRACT in error["message"]
    assert headers[records.HEADER_MODEL_VERSION] == "1"
    assert post(endpoint.url, split_body([[0.5, 0.5]]))[0] == 200


def test_an_unknown_contract_is_refused_before_anything_starts(settings: Settings) -> None:
    with pytest.raises(MLOpsNotFound, match="no contract on 'nope'"):
        serve(settings, f"{MODEL}@prod", enforce_contract="nope")


def test_features_are_computed_once_and_logged_beside_inputs_and_predictions(
    endpoint: Deployment, settings: Settings
) -> None:
    rows = [[0.2, 0.7], [0.9, 0.1]]
    status, headers, content = post(endpoint.url, split_body(rows))
    assert status == 200 and json.loads(content) == {"predictions": [0, 1]}
    refused, refused_headers, _ = post(endpoint.url, split_body([[5.0, 0.5]]))
    stop(settings, endpoint.name)
    log = read_traffic(settings, MODEL, "prod")
    answered = log[log[records.TRAFFIC_REQUEST_ID] == headers[records.HEADER_REQUEST_ID]]
    expected = sum_and_gap(pd.DataFrame(rows, columns=["a", "b"]))
    assert list(log.columns[-2:]) == ["feature.sum", "feature.gap"]
    np.testing.assert_allclose(answered[["feature.sum", "feature.gap"]], expected)
    assert answered["prediction"].tolist() == [0, 1]
    # A refused request is logged with its inputs, its status and no prediction.
    [row] = log.index[log[records.TRAFFIC_REQUEST_ID] == refused_headers[records.HEADER_REQUEST_ID]]
    assert refused == 422 and log.loc[row, records.TRAFFIC_STATUS] == 422
    assert log.loc[row, "a"] == 5.0 and pd.isna(log.loc[row, "prediction"])
