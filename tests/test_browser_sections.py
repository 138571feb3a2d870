"""The panel's four sections in a real JupyterLab and Chromium, over a pre-populated store.

Screenshots land in tests/ui/ (not committed); the README's pictures are copied from there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_mlops.tracking.client import mlflow_client
from tests.lab_server import PANEL_TAB, SHOTS, chromium_page, running_lab, widen_left_panel
from tests.notebooks import notebook
from tests.server_support import populate

pytestmark = pytest.mark.browser


def add_tracked_cell(path: Path) -> None:
    notebook(
        "%load_ext jupyter_mlops",
        "%%track from-notebook\nimport jupyter_mlops as mlops\nmlops.log(val_acc=0.5)",
        path=path,
    )


def test_sections_compare_promote_and_drift(
    tmp_path: Path,
    template_store: Path,
) -> None:
    root = tmp_path / "root"
    home = populate(root / "project", template_store)
    add_tracked_cell(root / "project" / "train.ipynb")
    SHOTS.mkdir(exist_ok=True)

    with running_lab(root, tmp_path / "state") as lab, chromium_page(tmp_path / "profile") as page:
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(lab.page_url("lab/tree/project/train.ipynb"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
        # Measure the panel, not the kernel start competing for the same two cores.
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
        page.click(PANEL_TAB)
        rows = page.get_by_test_id("mlops-run-row")
        rows.first.wait_for(timeout=60_000)  # its time: tests/benchmarks/bench_server.py
        widen_left_panel(page, 420)

        runs = page.get_by_test_id("mlops-runs")
        assert [r.strip() for r in rows.locator("td:nth-child(2)").all_inner_texts()] == [
            "drift-check",
            "wider",
            "baseline",
        ]
        assert "FINISHED" in rows.first.inner_text()

        # Sort by start time ascending, server side: the oldest run comes first.
        runs.locator("th", has_text="start").click()
        rows.first.filter(has_text="drift-check").wait_for(state="detached", timeout=10_000)
        runs.locator("th", has_text="start").click()  # back to newest first
        rows.first.filter(has_text="drift-check").wait_for(timeout=10_000)

        # Compare two runs: one chart per metric, one line per run.
        compare = page.get_by_test_id("mlops-compare-button")
        assert compare.is_disabled()
        rows.filter(has_text="wider").get_by_role("checkbox").check()
        rows.filter(has_text="baseline").get_by_role("checkbox").check()
        compare.click()
        view = page.get_by_test_id("mlops-compare")
        chart = view.locator('[data-testid="mlops-chart"][data-metric="val_acc"]')
        chart.wait_for(timeout=15_000)
        assert chart.locator("polyline").count() == 2
        assert {p.get_attribute("data-run") for p in chart.locator("polyline").all()} == {
            "wider",
            "baseline",
        }
        assert view.locator('[data-metric="loss"] polyline').count() == 2
        assert "lr" in view.inner_text()
        runs.screenshot(path=str(SHOTS / "runs-compare.png"))
        view.get_by_role("button", name="← back").click()

        # A run's details: params, inputs, artifacts.
        rows.filter(has_text="baseline").get_by_role("button", name="baseline").click()
        detail = page.get_by_test_id("mlops-run-detail")
        detail.get_by_text("customers@v1").wait_for(timeout=15_000)
        assert "epochs" in detail.inner_text()
        detail.get_by_role("button", name="← back").click()

        # Snapshots: versions, one version's schema and stats, a diff.
        snapshots = page.get_by_test_id("mlops-snapshots")
        snapshots.get_by_role("button", name="customers").click()
        schema = page.get_by_test_id("mlops-snapshot-schema")
        schema.get_by_text("age").wait_for(timeout=15_000)
        assert "float64" in schema.inner_text() and "mean" in schema.inner_text()
        page.get_by_test_id("mlops-snapshot-diff-select").select_option("1")
        diff = page.get_by_test_id("mlops-snapshot-diff")
        diff.wait_for(timeout=15_000)
        assert "customers@v1 → customers@v2" in diff.inner_text()
        # Viewing the older version, the diff still runs from older to newer.
        page.get_by_test_id("mlops-snapshot-detail").locator("tr", has_text="v1").first.click()
        page.get_by_test_id("mlops-snapshot-diff-select").select_option("2")
        diff.filter(has_text="customers@v1 → customers@v2").wait_for(timeout=15_000)
        assert "customers@v2 → customers@v1" not in diff.inner_text()
        snapshots.screenshot(path=str(SHOTS / "snapshots.png"))
        snapshots.get_by_role("button", name="← back").click()

        # Models: a failing gate is refused and the alias stays; a passing one moves it.
        models = page.get_by_test_id("mlops-models")
        models.get_by_role("button", name="churn").click()
        model = page.get_by_test_id("mlops-model-detail")
        champion = model.locator('.jp-MlopsToolbar [data-alias="champion"]')
        champion.wait_for(timeout=15_000)
        assert champion.get_attribute("data-version") == "1"
        form = page.get_by_test_id("mlops-promote")
        form.locator("select[name=version]").select_option("2")
        form.locator("input[name=alias]").fill("champion")
        form.locator("textarea[name=require]").fill("metrics.val_acc >= 0.95")
        # Moving an alias asks first; cancelling runs nothing.
        form.get_by_role("button", name="Run gate and promote").click()
        confirm = page.locator(".jp-Dialog")
        confirm.get_by_text("It points at v1 now").wait_for(timeout=15_000)
        confirm.get_by_role("button", name="Cancel").click()
        confirm.wait_for(state="detached", timeout=15_000)
        assert page.get_by_test_id("mlops-gate-result").count() == 0
        form.get_by_role("button", name="Run gate and promote").click()
        confirm.get_by_role("button", name="Promote").click()
        failed = page.locator('[data-testid="mlops-gate-result"][data-passed="false"]')
        failed.wait_for(timeout=30_000)
        assert "FAIL" in failed.inner_text() and "not moved" in failed.inner_text()
        model.get_by_test_id("mlops-gate-history").get_by_text("rejected").wait_for(timeout=15_000)
        assert champion.get_attribute("data-version") == "1"
        client = mlflow_client(f"sqlite:///{home.resolve() / 'mlflow.db'}")
        assert client.get_registered_model("churn").aliases == {"champion": 1}

        form.locator("textarea[name=require]").fill("metrics.val_acc >= 0.9")
        form.locator("input[name=vs]").fill("champion")
        form.locator("input[name=reason]").fill("better on validation")
        form.get_by_role("button", name="Run gate and promote").click()
        confirm.get_by_role("button", name="Promote").click()
        passed = page.locator('[data-testid="mlops-gate-result"][data-passed="true"]')
        passed.wait_for(timeout=30_000)
        assert passed.get_attribute("data-moved") == "true"
        assert passed.locator("tbody tr").count() == 3
        model.locator('.jp-MlopsToolbar [data-alias="champion"][data-version="2"]').wait_for(
            timeout=15_000
        )
        assert client.get_registered_model("churn").aliases == {"champion": 2}
        models.screenshot(path=str(SHOTS / "models-promote.png"))

        # Drift: the logged report opens in a main-area tab.
        drift = page.get_by_test_id("mlops-drift")
        drift.get_by_role("button", name="customers@v1 → customers@v2").click()
        frame = page.frame_locator(".jp-MlopsReport iframe")
        frame.get_by_text("customers@v2").first.wait_for(timeout=15_000)
        assert page.locator(".lm-TabBar-tab", has_text="Drift: customers@v1").count() == 1
        page.screenshot(path=str(SHOTS / "drift-report.png"))

        # Running a tracked cell refreshes the panel by itself (no refresh click).
        page.locator(".lm-TabBar-tab", has_text="train.ipynb").first.click()
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        rows.filter(has_text="from-notebook").wait_for(timeout=60_000)
        page.screenshot(path=str(SHOTS / "panel.png"))
