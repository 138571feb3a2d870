"""The panel in a real JupyterLab and Chromium: Compare comes from the server keyed by run id
(two runs with one name stay two), and damaged records are rows with their error.

Screenshots land in tests/ui/ (not committed).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import jupyter_mlops as mlops
from jupyter_mlops import records
from jupyter_mlops.snapshots.repository import version_key
from jupyter_mlops.tracking.client import mlflow_client
from tests.lab_server import PANEL_TAB, SHOTS, chromium_page, running_lab, widen_left_panel
from tests.server_support import populate, project_settings

pytestmark = pytest.mark.browser


def same_name_runs_and_damaged_records(project: Path, home: Path) -> dict[str, str]:
    """Two runs named ``rerun`` (a batch re-run) and one damaged record of each list.

    Returns the re-runs' ids, first run first. Damaged: customers@v1's version file (emptied),
    a drift summary cut in half (experiment ``damaged``), a model whose version is not a number.
    """
    ids = {}
    with project_settings(project):
        for lr, base in ((0.1, 0.5), (0.2, 0.8)):
            with mlops.track("rerun", params={"lr": lr}) as run:
                for step in range(4):
                    mlops.log(step=step, val_acc=base + 0.01 * step)
            ids[f"lr={lr}"] = run.run_id
    damaged = home / "snapshots" / version_key("customers", 1)
    damaged.chmod(0o644)
    damaged.write_bytes(b"")

    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    client = mlflow_client(uri)
    (summary,) = home.rglob("drift/*.json")  # the drift-check run's report
    experiment = client.create_experiment("damaged", artifact_location=(home / "damaged").as_uri())
    tags = {records.TAG_DRIFT_REFERENCE: "customers@v1"}
    cut = client.create_run(experiment, run_name="cut-report", tags=tags)
    client.log_text(cut.info.run_id, summary.read_text()[:100], "drift/cut.json")
    client.set_terminated(cut.info.run_id)
    client.create_registered_model("broken")
    client.create_model_version("broken", source=home.as_uri())
    with sqlite3.connect(home / "mlflow.db") as db:
        db.execute("UPDATE model_versions SET version = 'x' WHERE name = 'broken'")
    return ids


def test_compare_keeps_runs_of_one_name_apart_and_damaged_records_are_rows(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    home = populate(root / "project")
    ids = same_name_runs_and_damaged_records(root / "project", home)
    SHOTS.mkdir(exist_ok=True)

    with running_lab(root, tmp_path / "state") as lab, chromium_page(tmp_path / "profile") as page:
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(lab.page_url("lab/tree/project/train.ipynb"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
        page.click(PANEL_TAB)
        widen_left_panel(page, 460)
        rows = page.get_by_test_id("mlops-run-row")
        reruns = rows.filter(has_text="rerun")
        reruns.nth(1).wait_for(timeout=30_000)
        assert reruns.count() == 2
        for run_id in ids.values():
            page.locator(f'tr[data-run-id="{run_id}"]').get_by_role("checkbox").check()
        page.get_by_test_id("mlops-compare-button").click()

        # One line per run, keyed by run id: neither re-run's curve overwrites the other's.
        view = page.get_by_test_id("mlops-compare")
        chart = view.locator('[data-testid="mlops-chart"][data-metric="val_acc"]')
        chart.wait_for(timeout=15_000)
        lines = chart.locator("polyline").all()
        assert {line.get_attribute("data-run-id") for line in lines} == set(ids.values())
        assert len({line.get_attribute("points") for line in lines}) == 2
        labels = [line.get_attribute("data-run") or "" for line in lines]
        assert len(set(labels)) == 2 and all("rerun" in label for label in labels)
        # The params table has a column per run, each with its own lr.
        table = view.get_by_test_id("mlops-compare-params")
        for lr, run_id in ids.items():
            header = table.locator(f'th[data-run-id="{run_id}"]')
            assert "rerun" in header.inner_text()
            cell = table.locator("tr", has_text="lr").locator(f'td[data-run-id="{run_id}"]')
            assert cell.inner_text() == lr.removeprefix("lr=")
        page.get_by_test_id("mlops-runs").screenshot(path=str(SHOTS / "runs-compare-same-name.png"))
        view.get_by_role("button", name="← back").click()

        # Damaged records are rows with their error; the rest of each list stands.
        snapshots = page.get_by_test_id("mlops-snapshots")
        error = snapshots.get_by_test_id("mlops-row-error")
        error.wait_for(timeout=15_000)
        assert "customers@v1" in error.inner_text() and "empty" in error.inner_text()
        assert snapshots.get_by_test_id("mlops-snapshot-row").count() == 1
        snapshots.get_by_role("button", name="customers").click()
        detail = page.get_by_test_id("mlops-snapshot-detail")
        detail.get_by_test_id("mlops-row-error").filter(has_text="v1").wait_for(timeout=15_000)
        assert "v2" in detail.inner_text()
        detail.get_by_role("button", name="← back").click()

        models = page.get_by_test_id("mlops-models")
        broken = models.get_by_test_id("mlops-row-error")
        broken.wait_for(timeout=15_000)
        assert "broken" in broken.inner_text() and "cannot be read" in broken.inner_text()
        assert models.get_by_test_id("mlops-model-row").filter(has_text="churn").count() == 1

        page.get_by_test_id("mlops-experiment-select").select_option("damaged")
        drift = page.get_by_test_id("mlops-drift")
        cut = drift.get_by_test_id("mlops-row-error")
        cut.wait_for(timeout=15_000)
        assert "cut-report" in cut.inner_text() and "drift/cut.json is damaged" in cut.inner_text()
        page.get_by_test_id("mlops-panel").screenshot(path=str(SHOTS / "damaged-rows.png"))
