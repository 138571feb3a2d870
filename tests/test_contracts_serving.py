"""A model registered with its feature function, end to end on a real endpoint (127.0.0.1):
the same predictions from ``mlops.load_model``, ``mlops.score`` (a child process) and ``%serve``
on raw input; ``--enforce-contract`` answering 422 naming the rule; ``%skew`` on what the
endpoint logged, clean and with an upstream that changed the unit of a raw column."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import jupyter_mlops as mlops
from jupyter_mlops import records
from jupyter_mlops.config import Settings
from jupyter_mlops.context import current_settings
from jupyter_mlops.serving.deployments import list_deployments
from jupyter_mlops.serving.launch import serve, stop
from jupyter_mlops.serving.results import Deployment
from jupyter_mlops.serving.traffic import read_traffic
from tests import features_support
from tests.features_support import make_features
from tests.registry_support import client
from tests.serving_support import post, wait_until

pytestmark = pytest.mark.usefixtures("registry_store")
MODEL = "feat-churn"
RAW = ["age", "income", "plan"]


def customers(n: int = 1200) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "age": rng.integers(18, 90, n),
            "income": rng.lognormal(8, 0.5, n).round(2),
            "plan": rng.choice(["free", "pro"], n),
        }
    )


@pytest.fixture(scope="module")
def trained(shared_home: Path) -> Iterator[dict[str, Any]]:
    """Registered once for the module; the served processes cannot import this test module,
    so its functions travel by value, as a notebook's do."""
    for module in (sys.modules[__name__], features_support):
        cloudpickle.register_pickle_by_value(module)
    yield {}
    for module in (sys.modules[__name__], features_support):
        cloudpickle.unregister_pickle_by_value(module)


@pytest.fixture
def model(trained: dict[str, Any], registry_store: Path) -> dict[str, Any]:
    if not trained:
        raw = customers()
        mlops.expect("feat-raw", "age between 18 120", "plan in {free, pro}", "income >= 0")
        with mlops.track("train") as run:
            mlops.snapshot(raw, "feat-raw")
            estimator = LogisticRegression().fit(make_features(raw), raw["age"] > 50)
        version = mlops.register(
            estimator,
            MODEL,
            run=run.run_id,
            features=make_features,
            input_example=raw[RAW].head(3),
        )
        client(registry_store).set_registered_model_alias(MODEL, "prod", str(version.version))
        trained.update(raw=raw, estimator=estimator, version=version)
    return trained


@pytest.fixture(scope="module")
def endpoint(shared_home: Path) -> Iterator[dict[str, Any]]:
    holder: dict[str, Any] = {}
    yield holder
    deployment: Deployment | None = holder.get("deployment")
    if deployment is not None and any(d.alive for d in list_deployments(holder["settings"])):
        stop(holder["settings"], deployment.name)


def served(endpoint: dict[str, Any], model: dict[str, Any]) -> Deployment:
    if "deployment" not in endpoint:
        endpoint["settings"] = current_settings()
        endpoint["deployment"] = serve(
            endpoint["settings"], f"{MODEL}@prod", enforce_contract="feat-raw"
        )
    deployment: Deployment = endpoint["deployment"]
    return deployment


def ask(url: str, frame: pd.DataFrame) -> tuple[int, Any]:
    body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))})
    status, _, content = post(url, body)
    return status, json.loads(content)


def logged_rows(settings: Settings) -> int:
    return len(read_traffic(settings, MODEL, "prod"))


def test_identical_predictions_on_raw_input_everywhere(
    model: dict[str, Any], endpoint: dict[str, Any]
) -> None:
    raw = model["raw"].head(40)
    expected = model["estimator"].predict(make_features(raw)).tolist()
    assert mlops.load_model(f"{MODEL}@prod").predict(raw[RAW]).tolist() == expected
    scored = mlops.load(mlops.score(f"{MODEL}@prod", raw, name="feat-scores").ref)
    assert scored["prediction"].tolist() == expected
    assert scored["customer_id"].tolist() == raw["customer_id"].tolist()
    status, answer = ask(served(endpoint, model).url, raw)
    assert status == 200 and answer["predictions"] == expected

    version = client(current_settings().home).get_model_version(
        MODEL, str(model["version"].version)
    )
    assert version.tags["mlops.features"] == "make_features"
    assert len(version.tags["mlops.features.sha256"]) == 64
    import mlflow.artifacts  # the source travels in the model folder

    uri = client(current_settings().home).get_model_version_download_uri(MODEL, "1")
    source = Path(mlflow.artifacts.download_artifacts(f"{uri}/{records.FEATURES_ARTIFACT}"))
    assert source.read_text().startswith("def make_features(raw: pd.DataFrame)")
    lineage = repr(mlops.lineage(f"{MODEL}@prod"))
    assert "features make_features (sha256 " in lineage


def test_a_request_breaking_the_contract_is_a_422_naming_the_rule_and_is_logged(
    model: dict[str, Any], endpoint: dict[str, Any]
) -> None:
    deployment = served(endpoint, model)
    settings = endpoint["settings"]
    bad = model["raw"].head(2).assign(age=[30, 500])
    before = logged_rows(settings)
    status, answer = ask(deployment.url, bad)
    assert status == 422
    assert "age between 18 120" in json.dumps(answer) and "500" in json.dumps(answer)
    status, _ = ask(deployment.url, model["raw"].head(1).assign(plan="gold"))
    assert status == 422
    wait_until(lambda: logged_rows(settings) >= before + 2, 20, "the refusals logged")
    statuses = read_traffic(settings, MODEL, "prod")[records.TRAFFIC_STATUS].tolist()
    assert statuses.count(422) >= 2


def test_skew_of_what_the_endpoint_logged(model: dict[str, Any], endpoint: dict[str, Any]) -> None:
    deployment = served(endpoint, model)
    settings = endpoint["settings"]
    raw = model["raw"]
    start = pd.Timestamp.now(tz="UTC")
    sample = raw.sample(400, random_state=3)
    for part in (sample.iloc[i : i + 100] for i in range(0, 400, 100)):
        assert ask(deployment.url, part)[0] == 200
    wait_until(lambda: len(read_traffic(settings, MODEL, "prod", since=start)) >= 400, 20, "logged")
    clean = mlops.skew(f"{MODEL}@prod", since=start, key="customer_id")
    assert clean.passed and clean.matched_rows == 400 and clean.mismatch_share == 0.0, clean

    later = pd.Timestamp.now(tz="UTC")
    cents = raw.sample(400, random_state=4).assign(income=lambda d: d["income"] * 100)
    for part in (cents.iloc[i : i + 100] for i in range(0, 400, 100)):
        assert ask(deployment.url, part)[0] == 200  # a valid request: the contract allows it
    wait_until(lambda: len(read_traffic(settings, MODEL, "prod", since=later)) >= 400, 20, "logged")
    skewed = mlops.skew(f"{MODEL}@prod", since=later, key="customer_id")
    assert not skewed.passed
    assert dict(skewed.mismatches)["log_income"] == 1.0
    assert skewed.features.set_index("feature").loc["log_income", "drifted"]
