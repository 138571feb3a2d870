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


def running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_two_workers_serve_log_and_stop_together(template_store: Path, tmp_path: Path) -> None:
    settings = store_settings(template_store, tmp_path)
    register_two_versions(settings, "pair")
    deployment = serve(settings, "pair@prod", workers=2)
    try:
        workers = psutil.Process(deployment.pid).children(recursive=True)
        assert len([w for w in workers if "spawn" in " ".join(w.cmdline())]) == 2
        answered = [post(deployment.url, split_body([TELLING_ROW])) for _ in range(30)]
        assert {status for status, _, _ in answered} == {200}
        folder = deployment_folder(settings.home, deployment.name)
        # serve() returns when one worker answers; the other may still be loading the model
        # (then the first answered every request): each writes its stats file once started.
        wait_until(
            lambda: (
                len(list(folder.glob(f"{records.DEPLOYMENT_STATS_PREFIX}*.json"))) == 2
                and list_deployments(settings)[0].requests == 30
            ),
            60,
            "both stats files",
        )
        [row] = list_deployments(settings)
        assert row.workers == 2 and row.errors == 0 and row.p99_ms is not None
    finally:
        stop(settings, deployment.name)
    # Workers exit on the supervisor's signal, each after flushing its log: within seconds.
    wait_until(lambda: not any(running(p) for p in workers), 10, "every worker ended")
    log = read_traffic(settings, "pair", "prod")
    assert len(log) == 30 and log[records.TRAFFIC_STATUS].eq(200).all()
    with pytest.raises(MLOpsNotFound, match="no endpoint"):
        stop(settings, deployment.name)
