"""Serving tests: a store with a small scikit-learn model in two versions, and HTTP helpers."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jupyter_mlops.config import Settings, resolve_settings
from jupyter_mlops.registry.models import register
from jupyter_mlops.tracking.client import mlflow_client

COLUMNS = ["a", "b"]
# v1 (a logistic regression of a > b) says 0 for this row; v2 (a constant) says 1.
TELLING_ROW = [0.1, 0.9]


def frame(rows: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.random((rows, 2)), columns=COLUMNS)


def store_settings(template: Path, folder: Path) -> Settings:
    """A fresh copy of the migrated template store under ``folder/.mlops``."""
    home = folder / ".mlops"
    home.mkdir(parents=True)
    shutil.copy(template, home / "mlflow.db")
    return resolve_settings(folder, flags={"home": str(home)}, env={})


def register_two_versions(settings: Settings, name: str, alias: str = "prod") -> None:
    """``name`` v1 (logistic regression) and v2 (always 1), ``alias`` on v1."""
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    client = mlflow_client(settings.tracking_uri)
    experiment = client.get_experiment_by_name("serving")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("serving")
    run = client.create_run(experiment_id)
    client.set_terminated(run.info.run_id)
    x = frame()
    y = (x.a > x.b).astype(int)
    first = LogisticRegression().fit(x, y)
    second = DummyClassifier(strategy="constant", constant=1).fit(x, y)
    for model in (first, second):
        register(settings, model, name, run_id=run.info.run_id, input_example=x.head(2))
    client.set_registered_model_alias(name, alias, "1")


def move_alias(settings: Settings, name: str, alias: str, version: int) -> None:
    mlflow_client(settings.tracking_uri).set_registered_model_alias(name, alias, str(version))


def post(
    url: str, body: str | bytes, content_type: str = "application/json"
) -> tuple[int, Any, bytes]:
    """POST to ``{url}/invocations``: (status, headers (case-insensitive), body), errors too."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(
        f"{url}/invocations", data=data, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def split_body(rows: list[list[float]]) -> str:
    return json.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows}})


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll ``condition`` until true; the seconds it took. Fails after ``seconds``."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > seconds:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - began
