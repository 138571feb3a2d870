"""``%serve --workers 2``: uvicorn worker processes on one port, each logging its own traffic
and writing its own stats; status sums them and a stop ends every one of them."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from jupyter_mlops import records
from jupyter_mlops.errors import MLOpsNotFound
from jupyter_mlops.serving.deployments import deployment_folder, list_deployments
from jupyter_mlops.serving.launch import serve, stop
from jupyter_mlops.serving.traffic import read_traffic
from tests.serving_support import (
    TELLING_ROW,
    post,
    register_two_versions,
    split_body,
    store_settings,
    wait_until,
)


def test_two_workers_serve_log_and_stop_together(template_store: Path, tmp_path: Path) -> None:
    settings = store_settings(template_store, tmp_path)
    register_two_versions(settings, "pair")
    deployment = serve(settings, "pair@prod", workers=2)
    try:
        workers = psutil.Process(deployment.pid).children(recursive=True)
        assert len([w for w in workers if "spawn" in " ".join(w.cmdline())]) == 2
        answered = [post(deployment.url, split_body([TELLING_ROW])) for _ in range(30)]
        assert {status for status, _, _ in answered} == {200}
        wait_until(lambda: list_deployments(settings)[0].requests == 30, 10, "both stats files")
        [row] = list_deployments(settings)
        folder = deployment_folder(settings.home, deployment.name)
        assert len(list(folder.glob(f"{records.DEPLOYMENT_STATS_PREFIX}*.json"))) == 2
        assert row.workers == 2 and row.errors == 0 and row.p99_ms is not None
    finally:
        stop(settings, deployment.name)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers)
    log = read_traffic(settings, "pair", "prod")
    assert len(log) == 30 and log[records.TRAFFIC_STATUS].eq(200).all()
    with pytest.raises(MLOpsNotFound, match="no endpoint"):
        stop(settings, deployment.name)
