"""Fixtures of tests/test_registry_*.py: one real SQLite MLflow store per test module.

Migrating a store costs seconds, so each module copies the session's migrated template once and
its tests share it; each test gets its own experiment (and uses its own model names).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jupyter_mlops as mlops
from jupyter_mlops.tracking.client import mlflow_client
from tests.tracking_support import template_store  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def shared_home(template_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    home = tmp_path_factory.mktemp("registry") / ".mlops"
    home.mkdir()
    shutil.copy(template_store, home / "mlflow.db")
    return home


@pytest.fixture(autouse=True)
def registry_store(
    isolated_store: Path,
    shared_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Path]:
    monkeypatch.setenv("MLOPS_HOME", str(shared_home))
    monkeypatch.setenv("MLOPS_EXPERIMENT", f"exp-{request.node.name}")
    yield shared_home


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
