"""Helpers of the tracking tests: read a store's runs, run a console script.

The store fixtures (``template_store``, ``store``) live in tests/conftest.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from jupyter_mlops.tracking.client import mlflow_client


def client_for(home: Path) -> Any:
    return mlflow_client(f"sqlite:///{home / 'mlflow.db'}")


def all_runs(home: Path) -> list[Any]:
    client = client_for(home)
    ids = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(ids, max_results=1000)) if ids else []


def running_runs(home: Path) -> list[str]:
    return [r.info.run_id for r in all_runs(home) if r.info.status == "RUNNING"]


def run_cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / args[0]
    done = subprocess.run(
        [str(exe), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done
