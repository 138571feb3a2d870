"""Notebook identity from papermill, VS Code, batch runners and Jupyter Server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from jupyter_mlops.notebook import resolve_notebook, runner_notebook


@pytest.mark.parametrize(
    ("argv", "expected", "runner"),
    [
        (
            ["/v/bin/python", "/v/bin/jupyter-nbconvert", "--execute", "a.ipynb"],
            "a.ipynb",
            "nbconvert",
        ),
        (
            ["jupyter", "nbconvert", "--to", "notebook", "--execute", "x/b.ipynb"],
            "x/b.ipynb",
            "nbconvert",
        ),
        (
            ["jupyter-nbconvert", "--execute", "b.ipynb", "--output", "o.ipynb"],
            "b.ipynb",
            "nbconvert",
        ),
        (["papermill", "in.ipynb", "out.ipynb", "-p", "a", "1"], "in.ipynb", "papermill"),
        (["python", "-m", "pytest", "--nbval-lax", "c.ipynb"], "c.ipynb", "pytest"),
        (["jupyter", "execute", "d.ipynb"], "d.ipynb", "jupyter-execute"),
    ],
)
def test_runner_command_lines(argv: list[str], expected: str, runner: str, tmp_path: Path) -> None:
    assert runner_notebook(argv, tmp_path) == (tmp_path / expected, runner)


@pytest.mark.parametrize(
    "argv",
    [
        ["jupyter", "lab", "a.ipynb"],  # the lab server: JPY_SESSION_NAME knows better
        ["jupyter", "nbconvert", "a.ipynb", "b.ipynb"],  # ambiguous
        ["python", "train.py"],
    ],
)
def test_non_runner_command_lines(argv: list[str], tmp_path: Path) -> None:
    assert runner_notebook(argv, tmp_path) is None


def test_witness_order(tmp_path: Path) -> None:
    env = {"JPY_SESSION_NAME": str(tmp_path / "lab.ipynb")}
    vsc = {"__vsc_ipynb_file__": str(tmp_path / "vscode.ipynb")}
    pm = {"PAPERMILL_INPUT_PATH": str(tmp_path / "pm.ipynb"), **vsc}
    no_parent = 999_999_999  # no such process: no runner witness
    assert resolve_notebook(pm, env, no_parent).source == "papermill"
    assert resolve_notebook(vsc, env, no_parent).path == tmp_path / "vscode.ipynb"
    lab = resolve_notebook({}, env, no_parent)
    assert (lab.path, lab.source) == (tmp_path / "lab.ipynb", "jupyter-server")
    assert resolve_notebook({}, {}, no_parent).path is None


def test_real_nbconvert_run_knows_its_notebook(tmp_path: Path) -> None:
    """A kernel started by `jupyter nbconvert --execute` resolves the notebook being run."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import jupyter_mlops as mlops\n"
            "s = mlops.status()\n"
            "print(s.notebook.path, s.notebook.source, s.settings.experiment)"
        )
    ]
    path = tmp_path / "identity check.ipynb"
    nbformat.write(nb, path)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--inplace",
            path.name,
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    out = "".join(json.loads(path.read_text())["cells"][0]["outputs"][0]["text"])
    assert out.strip() == f"{path} nbconvert identity check"
