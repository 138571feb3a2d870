"""The README's tour in a real JupyterLab and Chromium; then the panel shows what its kernel made.

The tour points ``%config`` at its own store and experiment ``tour``; the panel must follow the
notebook's kernel there (not the folder's default store), in the light and the dark theme.
Screenshots land in tests/ui/ (not committed).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.lab_server import PANEL_TAB, SHOTS, chromium_page, running_lab
from tests.notebooks import add_cells

pytestmark = pytest.mark.browser

TOUR = Path(__file__).resolve().parent.parent / "example_notebooks" / "00_end_to_end.ipynb"
KERNEL_IDLE = re.compile(r"Python 3 \(ipykernel\) \| Idle")
FAILING_CELL = '%%track broken-batch\nraise ValueError("batch 7 has no rows")'

# Relative luminance and contrast ratio (WCAG 2) of an element's text on its own background.
CONTRAST_JS = """element => {
  const rgb = text => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const luminance = ([r, g, b]) => {
    const [R, G, B] = [r, g, b].map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  const style = getComputedStyle(element);
  const [a, b] = [luminance(rgb(style.color)), luminance(rgb(style.backgroundColor))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def choose_menu(page: Any, *labels: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{labels[0]}$")).click()
    for label in labels[1:-1]:
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{label}$")).hover()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{labels[-1]}$")).click()


def tables_fit_or_scroll(page: Any) -> list[str]:
    """Tables wider than the panel, in a section body that does not scroll sideways."""
    clipped: list[str] = page.evaluate(
        """() => {
          const panel = document.querySelector('.jp-MlopsPanel').getBoundingClientRect();
          return [...document.querySelectorAll('.jp-MlopsPanel table')].filter(table => {
            const box = table.getBoundingClientRect();
            if (box.width === 0 || box.right <= panel.right + 1) return false;
            let node = table.parentElement;
            while (node && !node.classList.contains('jp-MlopsPanel')) {
              const x = getComputedStyle(node).overflowX;
              if ((x === 'auto' || x === 'scroll') && node.getBoundingClientRect().right
                  <= panel.right + 1) return false;
              node = node.parentElement;
            }
            return true;
          }).map(table => table.innerText.slice(0, 40));
        }"""
    )
    return clipped


def check_panel(page: Any, home: Path, theme: str) -> None:
    origin = page.get_by_test_id("mlops-store-origin")
    origin.filter(has_text="Kernel store").wait_for(timeout=30_000)
    store = page.get_by_test_id("mlops-store").inner_text()
    assert str(home) in store and "tour" in store
    assert page.get_by_test_id("mlops-experiment-select").input_value() == "tour"

    rows = page.get_by_test_id("mlops-run-row")
    rows.filter(has_text="monitor").wait_for(timeout=30_000)
    names = {r.strip() for r in rows.locator("td:nth-child(2)").all_inner_texts()}
    assert {"train", "train-ddp", "monitor", "broken-batch"} <= names

    models = page.get_by_test_id("mlops-models")
    badge = models.locator('.jp-MlopsBadge[data-alias="champion"]')
    badge.wait_for(timeout=30_000)
    assert badge.get_attribute("data-version") == "1"
    contrast = badge.evaluate(CONTRAST_JS)
    assert contrast >= 4.5, f"alias badge contrast {contrast:.2f} in the {theme} theme"

    drift = page.get_by_test_id("mlops-drift")
    drift.get_by_test_id("mlops-drift-row").first.wait_for(timeout=30_000)
    assert "digits-train@v1 → digits-production@v1" in drift.inner_text()
    assert tables_fit_or_scroll(page) == []
    page.screenshot(path=str(SHOTS / f"tour-panel-{theme}.png"))


def test_the_tour_then_the_panel_in_light_and_dark(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "tour").mkdir(parents=True)
    notebook = root / "tour" / TOUR.name
    shutil.copy(TOUR, notebook)
    add_cells(notebook, FAILING_CELL)
    home = (root / "tour" / "tour-store").resolve()
    SHOTS.mkdir(exist_ok=True)

    with running_lab(root, tmp_path / "state") as lab, chromium_page(tmp_path / "profile") as page:
        try:
            run_the_tour_and_look(page, lab, home)
        except Exception:
            page.screenshot(path=str(SHOTS / "tour-failure.png"))
            shutil.copy(tmp_path / "state" / "lab.log", SHOTS / "tour-failure-lab.log")
            raise


def run_the_tour_and_look(page: Any, lab: Any, home: Path) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(lab.page_url(f"lab/tree/tour/{TOUR.name}"))
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
    # The kernel itself is idle (before it starts, "No Kernel" also reads as idle).
    page.get_by_text(KERNEL_IDLE).first.wait_for(timeout=90_000)
    choose_menu(page, "Run", "Run All Cells")
    error = page.locator(".jp-OutputArea-output", has_text="batch 7 has no rows")
    error.first.wait_for(timeout=420_000)  # the whole tour ran, up to the failing last cell
    assert not home.parent.joinpath(".mlops").exists()  # nothing went to the folder default

    page.click(PANEL_TAB)
    check_panel(page, home, "light")

    # The failed run's error and its artifacts, from its detail.
    runs = page.get_by_test_id("mlops-runs")
    runs.get_by_role("button", name="broken-batch", exact=True).click()
    failure = page.get_by_test_id("mlops-run-error")
    failure.wait_for(timeout=15_000)
    assert "ValueError: batch 7 has no rows" in failure.inner_text()
    failure.get_by_role("button", name="Show the full error").click()
    full = page.locator('[data-testid="mlops-artifact-view"][data-path="error.txt"]')
    full.get_by_text("batch 7 has no rows").first.wait_for(timeout=15_000)
    page.get_by_test_id("mlops-artifact").filter(has_text="cell.py").click()
    cell = page.locator('[data-testid="mlops-artifact-view"][data-path="cell.py"]')
    cell.get_by_text("raise ValueError").wait_for(timeout=15_000)
    page.get_by_test_id("mlops-run-detail").get_by_role("button", name="← back").click()

    # The drift report opens in a tab.
    page.get_by_test_id("mlops-drift-row").first.get_by_role("button").click()
    report = page.frame_locator(".jp-MlopsReport iframe")
    report.get_by_text("digits-production@v1").first.wait_for(timeout=15_000)
    body = report.locator("body")
    background = "b => getComputedStyle(b).backgroundColor"
    assert body.evaluate(background) == "rgb(255, 255, 255)"

    choose_menu(page, "Settings", "Theme", "JupyterLab Dark")
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached", timeout=30_000)
    # The open report follows the theme: its page turns dark too.
    expect(body).not_to_have_css("background-color", "rgb(255, 255, 255)", timeout=15_000)
    red, green, blue = map(int, re.findall(r"\d+", body.evaluate(background))[:3])
    assert max(red, green, blue) < 80, "the report's page is not dark"
    page.screenshot(path=str(SHOTS / "tour-drift-dark.png"))
    check_panel(page, home, "dark")
