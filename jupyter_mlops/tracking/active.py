"""Which MLflow run is open right now, asked without importing mlflow.

A ``%%track`` cell pushes its run here; a run the user opened with ``mlflow.start_run()`` is
found through mlflow's own fluent state, but only when mlflow is already imported, so code that
merely wants to link to a run (a snapshot) never pays mlflow's import time.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class ActiveRun:
    run_id: str
    tracking_uri: str


_tracked: list[ActiveRun] = []


def push(run: ActiveRun) -> None:
    _tracked.append(run)


def pop(run: ActiveRun) -> None:
    if run in _tracked:
        _tracked.remove(run)


def active_run() -> ActiveRun | None:
    if _tracked:
        return _tracked[-1]
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return None
    run = mlflow.active_run()
    return ActiveRun(run.info.run_id, mlflow.get_tracking_uri()) if run else None
