"""The panel's Deployments section in a real JupyterLab and Chromium, over a live endpoint.

It shows the endpoint's version and request count (kept current while the endpoint lives), the
latest %monitor verdict once there is one, and its stop button stops the endpoint's process.
The screenshot lands in tests/ui/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_mlops.monitoring.service import latest_path
from jupyter_mlops.serving.deployments import list_deployments
from jupyter_mlops.serving.launch import serve, stop
from tests.lab_server import SHOTS, chromium_page, open_mlops_panel, running_lab, widen_left_panel
from tests.process_support import survivors
from tests.serving_support import (
    TELLING_ROW,
    post,
    register_two_versions,
    split_body,
    store_settings,
)

pytestmark = pytest.mark.browser
# The fields of a %monitor result the section reads (the rest of MonitorResult.to_dict() aside).
MONITORED = {
    "model": "churn@prod",
    "version": 1,
    "passed": False,
    "headline": "FAILED: share_drifted > 0.3 held in 1 of 2 windows",
}


def test_the_section_shows_a_live_endpoint_and_its_stop_button_stops_it(
    tmp_path: Path, template_store: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    settings = store_settings(template_store, root)  # the store of the server's root folder
    register_two_versions(settings, "churn")
    deployment = serve(settings, "churn@prod")
    SHOTS.mkdir(exist_ok=True)
    try:
        for _ in range(2):
            assert post(deployment.url, split_body([TELLING_ROW]))[0] == 200
        with (
            running_lab(root, tmp_path / "state") as lab,
            chromium_page(tmp_path / "profile") as page,
        ):
            page.set_viewport_size({"width": 1400, "height": 900})
            open_mlops_panel(page, lab)
            widen_left_panel(page, 520)
            section = page.get_by_test_id("mlops-deployments")
            row = section.locator('[data-testid="mlops-deployment-row"][data-name="churn@prod"]')
            row.wait_for(timeout=60_000)
            assert row.get_attribute("data-alive") == "true"
            assert row.get_by_test_id("mlops-deployment-version").inner_text() == "v1"
            requests = row.get_by_test_id("mlops-deployment-requests")
            requests.filter(has_text="2").wait_for(timeout=30_000)

            assert section.locator("th", has_text="monitor").count() == 0  # never monitored

            # A live endpoint's counters follow without a refresh, and so does a verdict of
            # %monitor (its latest result, as GET monitor answers it).
            verdict = latest_path(settings, "churn@prod")
            verdict.parent.mkdir(parents=True, exist_ok=True)
            verdict.write_text(json.dumps(MONITORED), encoding="utf-8")
            assert post(deployment.url, split_body([TELLING_ROW]))[0] == 200
            requests.filter(has_text="3").wait_for(timeout=30_000)
            monitor = row.get_by_test_id("mlops-deployment-monitor")
            monitor.filter(has_text="failed").wait_for(timeout=30_000)
            assert monitor.get_attribute("title") == MONITORED["headline"]
            section.screenshot(path=str(SHOTS / "deployments.png"))

            row.get_by_test_id("mlops-deployment-stop").click()
            page.locator(".jp-Dialog").get_by_role("button", name="Stop").click()
            row.wait_for(state="detached", timeout=60_000)
            section.get_by_text("No endpoints").wait_for(timeout=10_000)
        assert survivors([deployment.pid], 10.0) == []
        assert list_deployments(settings) == []
    finally:
        if any(d.alive for d in list_deployments(settings)):
            stop(settings, deployment.name)
