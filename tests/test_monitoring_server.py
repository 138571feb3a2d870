"""GET monitor?model=NAME@ALIAS through a real Jupyter server: the latest %monitor result of the
store the path names; 404 for a model never monitored, 400 without a model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

import jupyter_mlops as mlops
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
