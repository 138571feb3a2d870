"""Helpers of the registry tests.

Their store fixtures (``shared_home``: one store per module; ``registry_store``: it as MLOPS_HOME
with an experiment per test) live in tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jupyter_mlops as mlops
from jupyter_mlops.tracking.client import mlflow_client


def client(home: Path) -> Any:
    return mlflow_client(f"sqlite:///{home / 'mlflow.db'}")


def make_run(name: str = "train", params: dict[str, Any] | None = None, **metrics: float) -> str:
    with mlops.track(name, params=params) as run:
        if metrics:
            mlops.log(**metrics)
    return run.run_id


def tiny_torch() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
