"""Fixtures shared by tests/test_tracking_*.py: a real SQLite MLflow store per test, cheaply.

Creating a SQLite store runs MLflow's migrations (seconds); one migrated store is made per
session and each test gets its own copy of it, so tests stay independent and fast.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_mlops.tracking import active, run
from jupyter_mlops.tracking.client import mlflow_client

_templates: list[Path] = []  # fixtures imported into several modules are one per module


@pytest.fixture(scope="session")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _templates:
        home = tmp_path_factory.mktemp("template") / ".mlops"
        mlflow_client(f"sqlite:///{home / 'mlflow.db'}")
        _templates.append(home / "mlflow.db")
    return _templates[0]


@pytest.fixture
def store(
    template_store: Path, isolated_store: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A fresh migrated store under ``<tmp>/.mlops``; fails the test if a run is left RUNNING."""
    home = isolated_store / ".mlops"
    home.mkdir()
    shutil.copy(template_store, home / "mlflow.db")
    monkeypatch.setenv("MLOPS_HOME", str(home))
    yield home
    assert not active._tracked, "a tracked run was left on the active stack"
    assert not run._open, "a tracked run was left open"
    assert running_runs(home) == [], "runs left RUNNING"


def client_for(home: Path) -> Any:
    return mlflow_client(f"sqlite:///{home / 'mlflow.db'}")


def all_runs(home: Path) -> list[Any]:
    client = client_for(home)
    ids = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(ids, max_results=1000)) if ids else []


def running_runs(home: Path) -> list[str]:
    return [r.info.run_id for r in all_runs(home) if r.info.status == "RUNNING"]


def write_notebook(path: Path, *sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return nb


def run_cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / args[0]
    done = subprocess.run(
        [str(exe), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done
