"""A pre-populated project for the REST and browser tests, made through the Python API.

``project/`` holds ``train.ipynb`` and its store ``project/.mlops``: three runs of experiment
``train`` (with metric curves, one of them reading snapshot ``customers``), two versions of
snapshot ``customers``, model ``churn`` with v1 (val_acc 0.8, alias ``champion``) and v2
(val_acc 0.92), and a drift report logged to the ``drift-check`` run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

import jupyter_mlops as mlops
from jupyter_mlops.config import MLOps
from tests.notebooks import notebook

EXPERIMENT = "train"


@contextmanager
def project_settings(project: Path) -> Iterator[None]:
    """Act as a kernel of ``project/train.ipynb`` would (cwd and experiment)."""
    saved_cwd, saved_env = Path.cwd(), dict(os.environ)
    os.chdir(project)
    for key in ("MLOPS_HOME", "MLOPS_EXPERIMENT", "MLFLOW_TRACKING_URI", "MLOPS_SNAPSHOT_STORE"):
        os.environ.pop(key, None)
    os.environ["MLOPS_EXPERIMENT"] = EXPERIMENT
    MLOps.clear_instance()
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        MLOps.clear_instance()


def identity(model_input: pd.DataFrame) -> pd.DataFrame:
    return model_input


def customers(seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40 + shift, 10, 500).round(1),
            "plan": rng.choice(["basic", "pro"], 500),
            "churned": rng.integers(0, 2, 500),
        }
    )


def populate(project: Path, template_db: Path | None = None) -> Path:
    """Fill ``project/.mlops`` (copying a migrated SQLite store when given); returns the home."""
    home = project / ".mlops"
    home.mkdir(parents=True, exist_ok=True)
    if template_db is not None:
        shutil.copy(template_db, home / "mlflow.db")
    notebook("%load_ext jupyter_mlops", path=project / "train.ipynb")
    with project_settings(project):
        mlops.snapshot(customers(0), "customers")
        with mlops.track("baseline", params={"lr": 0.1, "epochs": 5}):
            mlops.load("customers")
            for step in range(5):
                mlops.log(step=step, loss=1.0 / (step + 1), val_acc=0.6 + 0.04 * step)
        mlops.register(identity, "churn")
        with mlops.track("wider", params={"lr": 0.05, "epochs": 5}):
            for step in range(5):
                mlops.log(step=step, loss=0.8 / (step + 1), val_acc=0.7 + 0.055 * step)
        mlops.register(identity, "churn")
        mlops.promote("churn/1", "champion", "metrics.val_acc >= 0.5")
        mlops.snapshot(customers(1, shift=15.0), "customers", message="new month")
        with mlops.track("drift-check"):
            mlops.drift("customers@v1", "customers@v2")
    return home
