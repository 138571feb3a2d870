"""%compare renders as static SVG of tens of KB (no plotly.js): offline, exported, dark theme.

The interactive version is ``Comparison.figure()``, a plotly Figure shown by plotly's own renderer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

import jupyter_mlops as mlops
from tests.notebooks import notebook


def long_runs() -> list[str]:
    ids = []
    for name, rate in (("slow", 0.001), ("fast", 0.004)):
        with mlops.track(name, params={"rate": rate}) as run:
            for step in range(3000):  # more points than any panel can show
                mlops.log(step=step, loss=1 / (1 + rate * step), acc=rate * step / 12)
            mlops.log(test_acc=0.8 + rate)  # logged once
        ids.append(run.run_id)
    return ids


def test_compare_html_is_static_svg_of_tens_of_kb(store: Path, ip: Any) -> None:
    slow, fast = long_runs()
    result = ip.run_line_magic("compare", f"{slow} {fast}")
    html = ip.display_formatter.format(result)[0]["text/html"]
    assert len(html.encode()) < 60_000, len(html)
    assert "<script" not in html.lower() and "plotly" not in html.lower()
    assert not re.search(r"https?://", html)
    assert html.count("<svg") == 3  # acc, loss, test_acc
    # a metric logged once is a dot with its value, not an empty chart
    panel = html[html.index("<title>test_acc</title>") :].split("</svg>")[0]
    assert panel.count("<circle") == 2 and ">0.801<" in panel and ">0.804<" in panel
    # dark theme: text and axes follow JupyterLab's theme variables
    assert "fill:var(--jp-ui-font-color1" in html and "stroke:var(--jp-border-color1" in html


def test_figure_is_the_interactive_plotly_version(store: Path) -> None:
    slow, fast = long_runs()
    figure = mlops.compare(slow, fast).figure()
    modes = {(trace.name, trace.mode) for trace in figure.data if trace.xaxis == "x3"}
    assert modes == {("slow", "markers+text"), ("fast", "markers+text")}  # test_acc: once
    assert {trace.mode for trace in figure.data if trace.xaxis == "x"} == {"lines"}


def test_compare_in_a_kernel_keeps_the_notebook_small(store: Path) -> None:
    nb = notebook(
        "%load_ext jupyter_mlops\n"
        "import jupyter_mlops as mlops\n"
        "ids = []\n"
        "for name in ('a', 'b'):\n"
        "    with mlops.track(name) as run:\n"
        "        for step in range(500):\n"
        "            mlops.log(step=step, loss=1 / (step + 1))\n"
        "    ids.append(run.run_id)",
        "%compare {ids[0]} {ids[1]}",
        "%compare {ids[1]} {ids[0]}",
    )
    resources = {"metadata": {"path": str(store.parent)}}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources=resources).execute()
    path = store.parent / "compare.ipynb"
    nbformat.write(nb, path)
    assert path.stat().st_size < 60_000, path.stat().st_size  # was > 4.9 MB with plotly.js
    for cell in nb.cells[1:]:
        (output,) = cell.outputs
        assert "<svg" in output["data"]["text/html"]
        assert "<script" not in output["data"]["text/html"]
