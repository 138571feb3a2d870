"""A failing gate fails batch runs: nbconvert and papermill exit non-zero, nothing after it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.notebooks import notebook
from tests.registry_support import client

pytestmark = pytest.mark.usefixtures("registry_store")

CELLS = (
    "%load_ext jupyter_mlops\nimport jupyter_mlops as mlops",
    "%%track ci\nmlops.log(val_acc=0.8)",
    "model = lambda df: df * 2\nversion = %register model --name {name}",
    '%promote {name} --to champion --require "metrics.val_acc >= 0.9"',
    'print("deployed")',
)


def gate_notebook(folder: Path, name: str) -> Path:
    path = folder / "ci_gate.ipynb"
    notebook(*(cell.replace("{name}", name) for cell in CELLS), path=path)
    return path


def run(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / args[0]
    env = {**os.environ, "MLOPS_HOME": str(home)}
    return subprocess.run(
        [str(exe), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def decisions(home: Path, name: str) -> list[str]:
    return [
        json.loads(p.read_text())["decision"]
        for p in (home / "reports").glob(f"gate-{name}-*.json")
    ]


def test_nbconvert_exits_non_zero_and_writes_the_executed_notebook(
    tmp_path: Path,
    registry_store: Path,
) -> None:
    path = gate_notebook(tmp_path, "nbc-model")
    done = run(
        [
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            path.name,
            "--output",
            "executed.ipynb",
        ],
        tmp_path,
        registry_store,
    )
    assert done.returncode != 0
    assert "GateFailed: gate FAILED: nbc-model v1 -> champion" in done.stderr
    assert "[FAIL] metrics.val_acc >= 0.9" in done.stderr
    assert "deployed" not in done.stdout + done.stderr.split("GateFailed", 1)[1]
    assert "champion" not in client(registry_store).get_registered_model("nbc-model").aliases
    assert decisions(registry_store, "nbc-model") == ["rejected"]
    # The executed notebook is still written (jupyter_mlops.batch.nbconvert), up to the gate.
    code = nbformat.read(tmp_path / "executed.ipynb", as_version=4).cells
    errors = [o for o in code[3].outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "GateRejected"
    assert errors[0].traceback[0].startswith("GateFailed: gate FAILED: nbc-model v1 -> champion")
    assert code[4].execution_count is None and not code[4].outputs  # nothing ran after the gate


def test_papermill_exits_non_zero_and_writes_the_executed_notebook(
    tmp_path: Path,
    registry_store: Path,
) -> None:
    path = gate_notebook(tmp_path, "pm-model")
    done = run(
        ["papermill", "--log-level", "WARNING", path.name, "out.ipynb"], tmp_path, registry_store
    )
    assert done.returncode != 0
    assert "PapermillExecutionError" in done.stderr
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    code = [c for c in out.cells if c.cell_type == "code"]
    errors = [o for o in code[3].outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "GateRejected"
    assert errors[0].traceback[0].startswith("GateFailed: gate FAILED: pm-model v1 -> champion")
    assert any("[FAIL] metrics.val_acc >= 0.9" in line for line in errors[0].traceback)
    assert code[4].execution_count is None and not code[4].outputs  # nothing ran after the gate
    assert decisions(registry_store, "pm-model") == ["rejected"]
