"""`jupyter nbconvert --execute` writes the executed notebook on a cell error and exits non-zero."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbconvert.exporters import Exporter

from jupyter_mlops.batch import nbconvert as batch
from tests.notebooks import notebook

FAILING = (
    'print("before the gate")',
    'import jupyter_mlops\nraise jupyter_mlops.GateFailed("gate FAILED: m v1 -> champion")',
    'open("marker.txt", "w").write("ran")',
)
SHIPPED = Path(__file__).resolve().parent.parent / "jupyter-config" / "nbconvert-config"
CONFIG = "jupyter_nbconvert_config.json"


def nbconvert(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the unchanged command line; stderr comes back without the traceback's colours."""
    exe = Path(sys.executable).parent / "jupyter-nbconvert"
    done = subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=180,
    )
    done.stderr = re.sub(r"\x1b\[[0-9;]*m", "", done.stderr)
    return done


def executed(path: Path) -> list[nbformat.NotebookNode]:
    return nbformat.read(path, as_version=4).cells


@pytest.mark.parametrize(
    ("extra", "written"),
    [
        ([], "ci.nbconvert.ipynb"),
        (["--output", "executed"], "executed.ipynb"),
        (["--inplace"], "ci.ipynb"),
    ],
)
def test_a_failing_cell_exits_non_zero_and_the_notebook_is_written(
    tmp_path: Path, extra: list[str], written: str
) -> None:
    notebook(*FAILING, path=tmp_path / "ci.ipynb")
    done = nbconvert("--to", "notebook", "--execute", "ci.ipynb", *extra, cwd=tmp_path)
    assert done.returncode != 0
    # The stock message: CellExecutionError naming the cell, ending with the one-line error.
    assert "CellExecutionError" in done.stderr
    assert "GateFailed: gate FAILED: m v1 -> champion" in done.stderr
    assert f"the notebook executed up to it is in {written}" in done.stderr
    first, gate, after = executed(tmp_path / written)
    assert first.execution_count == 1
    assert [o.text for o in first.outputs] == ["before the gate\n"]
    assert gate.execution_count == 2
    assert [(o.output_type, o.ename, o.evalue) for o in gate.outputs] == [
        ("error", "GateFailed", "gate FAILED: m v1 -> champion")
    ]
    assert after.execution_count is None and after.outputs == []
    assert not (tmp_path / "marker.txt").exists()


def test_html_export_of_a_failing_gate_is_written_up_to_the_failing_cell(tmp_path: Path) -> None:
    notebook(*FAILING, path=tmp_path / "ci.ipynb")
    done = nbconvert("--to", "html", "--execute", "ci.ipynb", cwd=tmp_path)
    assert done.returncode != 0
    assert "GateFailed: gate FAILED: m v1 -> champion" in done.stderr
    assert "the notebook executed up to it is in ci.html" in done.stderr
    page = (tmp_path / "ci.html").read_text()
    assert "before the gate" in page and "gate FAILED: m v1 -&gt; champion" in page
    assert not (tmp_path / "marker.txt").exists()


def test_a_successful_notebook_still_exits_zero(tmp_path: Path) -> None:
    notebook('print("fine")', 'open("marker.txt", "w").write("ran")', path=tmp_path / "ci.ipynb")
    done = nbconvert("--to", "notebook", "--execute", "ci.ipynb", "--output", "ok", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "A cell failed" not in done.stderr
    assert [c.execution_count for c in executed(tmp_path / "ok.ipynb")] == [1, 2]
    assert (tmp_path / "marker.txt").read_text() == "ran"


def test_allow_errors_runs_on_and_exits_zero_as_before(tmp_path: Path) -> None:
    notebook(*FAILING, path=tmp_path / "ci.ipynb")
    done = nbconvert("--to", "notebook", "--execute", "--allow-errors", "ci.ipynb", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    cells = executed(tmp_path / "ci.nbconvert.ipynb")
    assert [c.execution_count for c in cells] == [1, 2, 3]
    assert cells[1].outputs[0].ename == "GateFailed"
    assert (tmp_path / "marker.txt").read_text() == "ran"


def test_stdout_keeps_the_stock_failure(tmp_path: Path) -> None:
    """Another writer gets the stock behaviour: the error is never swallowed."""
    notebook(*FAILING, path=tmp_path / "ci.ipynb")
    done = nbconvert("--to", "notebook", "--execute", "--stdout", "ci.ipynb", cwd=tmp_path)
    assert done.returncode != 0
    assert "GateFailed: gate FAILED: m v1 -> champion" in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "marker.txt").exists()


def test_the_installed_config_swaps_only_the_execute_preprocessor() -> None:
    shipped = json.loads((SHIPPED / CONFIG).read_text())
    installed = Path(sys.prefix, "etc", "jupyter", CONFIG)
    assert json.loads(installed.read_text()) == shipped, "re-run pip install -e . to install it"
    stock = Exporter.class_traits()["default_preprocessors"].default()
    ours = f"{batch.__name__}.{batch.KeepPartialExecutePreprocessor.__name__}"
    expected = [ours if p == "nbconvert.preprocessors.ExecutePreprocessor" else p for p in stock]
    assert shipped["Exporter"]["default_preprocessors"] == expected
    assert shipped["NbConvertApp"]["writer_class"] == (
        f"{batch.__name__}.{batch.FailAfterWriteFilesWriter.__name__}"
    )
