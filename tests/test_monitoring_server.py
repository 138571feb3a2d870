"""GET monitor?model=NAME@ALIAS through a real Jupyter server: the latest %monitor result of the
store the path names; 404 for a model never monitored, 400 without a model."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from tests.monitoring_support import START, trained_model, write_traffic
from tests.server_support import project_settings


@pytest.fixture
def monitored(template_store: Path, jp_root_dir: Path) -> Path:
    project = jp_root_dir / "project"
    (project / ".mlops").mkdir(parents=True)
    shutil.copy(template_store, project / ".mlops" / "mlflow.db")
    with project_settings(project):
        trained_model()
        write_traffic(hours=3, requests_per_hour=20, rows_per_request=20, shifted=(1,))
        mlops.monitor("churn@prod", since=START.isoformat())
    return project


async def test_get_monitor_returns_the_latest_result(jp_fetch: Any, monitored: Path) -> None:
    response = await jp_fetch(
        "jupyter-mlops", "api", "monitor", params={"model": "churn@prod", "path": "project"}
    )
    answer = json.loads(response.body)
    assert answer["model"] == "churn@prod" and answer["version"] == 1
    assert answer["reference"] == "churn-train@v1"
    assert [w["requests"] for w in answer["windows"]] == [20, 20, 20]
    assert answer["drifted_windows"] == ["2026-11-30T01:00:00+00:00"]
    for params, status, message in [
        ({"model": "other@prod", "path": "project"}, 404, "has not been monitored"),
        ({"path": "project"}, 400, "name the model"),
    ]:
        with pytest.raises(HTTPClientError) as refused:
            await jp_fetch("jupyter-mlops", "api", "monitor", params=params)
        assert refused.value.code == status
        assert message in json.loads(refused.value.response.body)["message"]


@pytest.fixture
def scheduled_root(template_store: Path, jp_root_dir: Path) -> Path:
    """A store at the server root with a schedule due every two seconds, made before the server
    starts (the fixture is listed before jp_fetch)."""
    from jupyter_mlops.monitoring import schedules
    from tests.notebooks import notebook

    (jp_root_dir / ".mlops").mkdir()
    shutil.copy(template_store, jp_root_dir / ".mlops" / "mlflow.db")
    notebook("print('fired')", path=jp_root_dir / "job.ipynb")
    with project_settings(jp_root_dir):
        schedules.add(current_settings(), str(jp_root_dir / "job.ipynb"), "*/2 * * * * *", {})
    return jp_root_dir


async def test_the_server_extension_runs_the_schedules_of_its_store(
    scheduled_root: Path, jp_fetch: Any, jp_serverapp: Any
) -> None:
    from jupyter_mlops import records
    from jupyter_mlops.tracking.client import mlflow_client

    host = jp_serverapp.web_app.settings["jupyter_mlops_schedule_host"]
    assert host is not None  # no kernel is open: the server runs the schedule
    client = mlflow_client(f"sqlite:///{scheduled_root / '.mlops' / 'mlflow.db'}")
    try:
        deadline = time.monotonic() + 120
        finished: list[Any] = []
        while not finished and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            found = client.get_experiment_by_name(records.SCHEDULE_EXPERIMENT)
            runs = client.search_runs([found.experiment_id]) if found else []
            finished = [r for r in runs if r.info.status == "FINISHED"]
        assert finished and finished[0].data.tags[records.TAG_SCHEDULE_OUTCOME] == "succeeded"
    finally:
        with project_settings(scheduled_root):
            from jupyter_mlops.monitoring import schedules

            for schedule in schedules.list_schedules(current_settings()).schedules:
                schedules.remove(current_settings(), schedule.id)
        host.stop()  # waits for an execution in flight: no papermill is left behind
    runs = client.search_runs(
        [client.get_experiment_by_name(records.SCHEDULE_EXPERIMENT).experiment_id]
    )
    assert all(r.info.status != "RUNNING" for r in runs)
