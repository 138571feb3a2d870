"""Notebook identity from papermill, VS Code, batch runners and Jupyter Server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking import BlockingKernelClient

from jupyter_mlops.notebook import resolve_notebook, runner_notebook
from jupyter_mlops.tracking.client import mlflow_client
from tests.kernel_support import ok
from tests.lab_server import running_lab
from tests.notebooks import notebook


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
    path = tmp_path / "identity check.ipynb"
    notebook(
        "import jupyter_mlops as mlops\n"
        "s = mlops.status()\n"
        "print(s.notebook.path, s.notebook.source, s.settings.experiment)",
        path=path,
    )
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


def test_kernel_follows_a_notebook_renamed_in_a_real_jupyter_server(
    tmp_path: Path, template_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Untitled.ipynb renamed to magics.ipynb while its kernel runs: runs go to `magics`."""
    root, runtime, home = tmp_path / "root", tmp_path / "runtime", tmp_path / "home"
    for folder in (root, runtime, home):
        folder.mkdir()
    shutil.copy(template_store, home / "mlflow.db")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("MLOPS_HOME", str(home))
    notebook(path=root / "Untitled.ipynb")
    with running_lab(root, tmp_path / "state") as lab:

        def api(method: str, path: str, body: dict[str, Any]) -> Any:
            request = urllib.request.Request(
                f"{lab.url}/api/{path}",
                data=json.dumps(body).encode(),
                method=method,
                headers={"Authorization": f"token {lab.token}"},
            )
            with urllib.request.urlopen(request, timeout=30) as reply:
                return json.load(reply)

        session = api(
            "POST",
            "sessions",
            {"path": "Untitled.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
        )
        kc = BlockingKernelClient(
            connection_file=str(runtime / f"kernel-{session['kernel']['id']}.json")
        )
        kc.load_connection_file()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            where = "print(mlops.status().notebook.path)"
            before = ok(kc, f"%load_ext jupyter_mlops\nimport jupyter_mlops as mlops\n{where}")
            assert before.strip() == str(root / "Untitled.ipynb")
            # What JupyterLab does on a rename: move the file, then point the session at it.
            api("PATCH", "contents/Untitled.ipynb", {"path": "magics.ipynb"})
            api(
                "PATCH",
                f"sessions/{session['id']}",
                {"path": "magics.ipynb", "name": "magics.ipynb"},
            )
            deadline = time.monotonic() + 30  # the kernel reuses the server's answer for 2 s
            while ok(kc, where).strip() != str(root / "magics.ipynb"):
                assert time.monotonic() < deadline, "the kernel never saw the rename"
            summary = ok(kc, "%%track\nmlops.log(x=1)")
        finally:
            kc.stop_channels()
    assert "in experiment 'magics'" in summary
    client = mlflow_client(f"sqlite:///{home / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("magics").experiment_id])
    assert run.data.tags["mlops.notebook"] == str(root / "magics.ipynb")
