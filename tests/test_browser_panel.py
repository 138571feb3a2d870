"""The MLOps side panel in a real JupyterLab, in a real headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab_server import chromium_page, open_mlops_panel, running_lab
from tests.notebooks import notebook

pytestmark = pytest.mark.browser


def test_panel_shows_the_store_of_the_open_notebook(tmp_path: Path) -> None:
    root = tmp_path / "root"
    project = root / "churn"
    (project / ".mlops").mkdir(parents=True)
    notebook(path=project / "train.ipynb")
    home = project.resolve() / ".mlops"

    with running_lab(root, tmp_path / "state") as lab, chromium_page(tmp_path / "profile") as page:
        open_mlops_panel(page, lab, "lab/tree/churn/train.ipynb")
        store = page.get_by_test_id("mlops-store")
        store.filter(has_text="train").wait_for(timeout=30_000)  # follows the open notebook
        text = store.inner_text()
        assert str(home) in text
        assert f"sqlite:///{home}/mlflow.db" in text
        for section in ("mlops-runs", "mlops-snapshots", "mlops-models", "mlops-drift"):
            assert page.get_by_test_id(section).is_visible()
        page.screenshot(path=str(tmp_path / "panel.png"))
        assert (tmp_path / "panel.png").stat().st_size > 10_000

        # The kernel JupyterLab started for this notebook knows which notebook it runs.
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
        page.locator(".jp-Cell .cm-content").first.click()
        page.keyboard.type("import jupyter_mlops as m; print(m.status().notebook)")
        page.keyboard.press("Shift+Enter")
        output = page.locator(".jp-OutputArea-output").filter(has_text="via jupyter-server")
        output.wait_for(timeout=60_000)
        assert (
            output.inner_text().strip()
            == f"{project.resolve() / 'train.ipynb'} (via jupyter-server)"
        )
