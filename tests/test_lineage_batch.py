"""Batch use: papermill parameters become run params; the tour runs under nbconvert, papermill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlops.context import current_settings
from jupyter_mlops.lineage import batch
from jupyter_mlops.tracking.client import mlflow_client

TOUR = Path(__file__).resolve().parent.parent / "example_notebooks" / "00_end_to_end.ipynb"
BIN = Path(sys.executable).parent


@pytest.fixture
def clean_parameters(ip: Any) -> Iterator[None]:
    batch.reset()
    before = set(ip.user_ns)
    yield
    # the test shell is shared: later tests must not inherit papermill parameters or variables
    batch.reset()
    for name in set(ip.user_ns) - before:
        del ip.user_ns[name]


def run_params(run_name: str) -> tuple[dict[str, str], dict[str, str]]:
    client = mlflow_client(current_settings().tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(experiments, filter_string=f"attributes.run_name = '{run_name}'")
    return dict(run.data.params), dict(run.data.tags)


def test_papermill_parameters_cell_becomes_params_of_later_runs(
    ip: Any, clean_parameters: None
) -> None:
    ip.run_cell("epochs = 3\nlr = 0.5")  # the notebook's own defaults: not papermill's
    ip.run_cell("# Parameters\nepochs = 7\nlabel: str = 'x'\n")  # what papermill injects
    assert batch.parameters() == {"epochs": "7", "label": "x"}
    ip.run_cell("%%track first --params lr\nepochs = 9\nx = 1")
    ip.run_cell("import jupyter_mlops as mlops\nwith mlops.track('second'):\n    pass")
    params, tags = run_params("first")
    # injected at start: the value papermill gave, even though the cell reassigned it later
    assert params == {"lr": "0.5", "epochs": "7", "label": "x"}
    assert tags["mlops.batch_parameters"] == "epochs,label"
    assert run_params("second")[0] == {"epochs": "7", "label": "x"}


def test_cells_without_the_papermill_header_record_nothing(ip: Any, clean_parameters: None) -> None:
    ip.run_cell("# parameters of my own\nepochs = 7")
    ip.run_cell("%%track plain\nx = 1")
    params, tags = run_params("plain")
    assert params == {} and "mlops.batch_parameters" not in tags
    assert batch.parameter_names("x = 1") == []
    assert batch.parameter_names("# Parameters\nfor i in range(2):\n    pass\na = 1") == ["a"]


def cell_text(notebook: dict[str, Any], startswith: str) -> str:
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and source.startswith(startswith):
            return "".join(
                "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                for o in cell["outputs"]
            )
    raise AssertionError(f"no cell starting with {startswith!r}")


def test_tour_runs_under_nbconvert_and_papermill_with_full_lineage(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    converted, parametrised = tmp_path / "nbconvert.ipynb", tmp_path / "papermill.ipynb"
    # Both batch runs at once, each in a folder (so a project store) of its own.
    commands = {
        "nbconvert": [BIN / "jupyter", "nbconvert", "--to", "notebook", "--execute", TOUR,
                      "--output", converted],
        "papermill": [BIN / "papermill", TOUR, parametrised, "-p", "epochs", "40",
                      "--no-progress-bar"],
    }  # fmt: skip
    runs = {}
    for name, command in commands.items():
        (tmp_path / name).mkdir()
        runs[name] = subprocess.Popen(
            command, env=env, cwd=tmp_path / name, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    for name, run in runs.items():
        output = run.communicate(timeout=300)[0]
        assert run.returncode == 0, f"{name} failed:\n{output[-3000:]}"
    for path in (converted, parametrised):
        notebook = json.loads(path.read_text())
        chain = cell_text(notebook, "# NBVAL_CHECK_OUTPUT\nlineage = ")
        assert chain.splitlines() == [
            "snapshot  ['digits-production@v1', 'digits-train@v1']",
            "run       ['train']",
            "model     ['digits/1']",
            "drift     ['digits-train@v1 vs digits-production@v1']",
            "gate      ['digits v1 -> champion', 'digits v1 -> production']",
        ]
        used = cell_text(notebook, "# NBVAL_CHECK_OUTPUT\nused = ")
        assert used.splitlines() == ["runs: ['train', 'monitor']", "models: ['digits/1']"]
        graph = cell_text(notebook, "%lineage digits@champion")
        assert "(saved in)" in graph and "(drift of its input data)" in graph
        html = next(
            o["data"]["text/html"]
            for c in notebook["cells"]
            if "".join(c["source"]).startswith("%lineage")
            for o in c["outputs"]
            if "text/html" in o.get("data", {})
        )
        assert "<svg" in "".join(html)
    params = cell_text(json.loads(parametrised.read_text()), "# NBVAL_CHECK_OUTPUT\nprint(sorted(")
    assert params.splitlines()[0] == "[('epochs', '40'), ('hidden', '32')]"
    params = cell_text(json.loads(converted.read_text()), "# NBVAL_CHECK_OUTPUT\nprint(sorted(")
    assert params.splitlines()[0] == "[('hidden', '32')]"
