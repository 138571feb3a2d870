"""``--retrain NOTEBOOK``: run the retraining notebook when the monitor's gate failed.

The notebook gets the failing window, the reason and the monitoring run's id as papermill
parameters (``window``, ``reason``, ``trigger_run``), plus the ``-p`` ones; its own ``%promote``
gate decides whether a new version goes live. Papermill's parameters become params of every
tracked run inside it (lineage.batch), and the runs it opened are tagged with the monitoring run
(``mlops.monitor.trigger``): ``%lineage`` reads trigger -> run -> version -> decision.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import records
from ..config import Settings
from .naming import slug
from .papermill_run import execute
from .result import RetrainResult


def retrain(
    settings: Settings,
    notebook: str,
    params: Mapping[str, Any],
    window: str,
    reason: str,
    trigger_run: str | None,
) -> RetrainResult:
    names = records.RETRAIN_PARAMETERS
    parameters = {**dict(zip(names, (window, reason, trigger_run or ""), strict=True)), **params}
    stamp = time.strftime("%Y%m%dT%H%M%S")
    output = (
        settings.home
        / records.MONITORING_DIRNAME
        / records.RETRAIN_FOLDER
        / f"{slug(Path(notebook).stem)}-{stamp}.ipynb"
    )
    done = execute(settings, notebook, output, parameters)
    if trigger_run:
        _link(settings, trigger_run, output)
    return RetrainResult(notebook, done.output, done.returncode, parameters, done.error)


def _link(settings: Settings, trigger_run: str, output: Path) -> None:
    """Tag the runs the notebook opened with their trigger; keep its output on the trigger."""
    from ..tracking.client import mlflow_client

    client = mlflow_client(settings.tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    parameter = records.RETRAIN_PARAMETERS[2]
    for run in client.search_runs(
        experiments, filter_string=f"params.{parameter} = '{trigger_run}'", max_results=100
    ):
        client.set_tag(run.info.run_id, records.TAG_MONITOR_TRIGGER, trigger_run)
    if output.is_file():
        client.log_artifact(trigger_run, str(output), records.RETRAIN_FOLDER)
