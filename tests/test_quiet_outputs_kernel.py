"""No stderr under a result that already says it: --warn-only, %register's pickle log, progress.

Each check runs the cells in a real kernel (nbclient) and reads the notebook's outputs.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.notebooks import notebook


def execute(folder: Path, *sources: str) -> list[nbformat.NotebookNode]:
    nb = notebook(*sources)
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    return nb.cells


def stderr(cell: nbformat.NotebookNode) -> list[str]:
    return [o["text"] for o in cell.outputs if o.get("name") == "stderr"]


def shown(cell: nbformat.NotebookNode) -> str:
    return "".join(
        o["data"]["text/plain"] for o in cell.outputs if o["output_type"] == "execute_result"
    )


def last_line(stream: str) -> str:
    """What a terminal (and JupyterLab) shows after carriage returns overwrite the line."""
    return stream.rstrip("\n").split("\n")[-1].split("\r")[-1].strip()


def test_warn_only_and_register_print_nothing_on_stderr(isolated_store: Path) -> None:
    cells = execute(
        isolated_store,
        "%load_ext jupyter_mlops\n"
        "import numpy as np\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "import jupyter_mlops as mlops",
        "%%track fit\n"
        "model = LogisticRegression().fit(np.random.rand(40, 2), np.arange(40) % 2)\n"
        "mlops.log(acc=0.5)",
        "mv = %register model --name churn\nmv",
        '%promote churn --to champion --require "metrics.acc >= 0.99" --warn-only',
        '%gate "metrics.acc >= 0.99" --warn-only',
    )
    _, _, register, promote, gate = cells
    assert stderr(register) == [], stderr(register)  # MLflow's pickle paragraph
    assert "model 'churn' version 1 (sklearn)" in shown(register)
    html = next(o for o in register.outputs if o["output_type"] == "execute_result")
    assert "pickled: load only models you trust" in html["data"]["text/html"]
    for cell in (promote, gate):
        assert stderr(cell) == [], stderr(cell)  # no red GateWarning with our install path
        assert "FAILED" in shown(cell) and "[FAIL] metrics.acc >= 0.99" in shown(cell)


def test_snapshot_progress_shows_only_slow_work_and_never_an_empty_box(
    isolated_store: Path,
) -> None:
    cells = execute(
        isolated_store,
        "%load_ext jupyter_mlops\n"
        "import importlib, pandas as pd\n"
        "progress = importlib.import_module('jupyter_mlops.snapshots.progress')\n"
        "df = pd.DataFrame({'a': range(1000)})",
        "fast = %snapshot df --name quick",  # well under a second: no progress at all
        "progress.SHOW_AFTER_S = 0  # every snapshot counts as slow now\n"
        "df2 = df.assign(b=1)\nslow = %snapshot df2 --name slow",
    )
    _, fast, slow = cells
    assert stderr(fast) == []
    bar = "".join(stderr(slow))
    assert "snapshot slow" in last_line(bar) and "100%" in last_line(bar), repr(bar)


def test_drift_gate_in_warn_mode_warns_in_one_line_without_our_path(isolated_store: Path) -> None:
    cells = execute(
        isolated_store,
        "%load_ext jupyter_mlops\n"
        "%config MLOps.gate_mode = 'warn'\n"
        "import numpy as np, pandas as pd\n"
        "rng = np.random.default_rng(0)\n"
        "ref = pd.DataFrame({'a': rng.normal(0, 1, 3000)})\n"
        "cur = pd.DataFrame({'a': rng.normal(1, 1, 3000)})",
        '%drift ref cur --fail-on "share_drifted > 0.5"',
    )
    (warning,) = stderr(cells[1])
    assert warning == (
        "%drift:1: GateWarning: gate FAILED: drift ref vs cur (1 of 1 checks failed): "
        "share_drifted > 0.5 (value 1, need <= 0.5)\n"
    )
    assert "DriftResult: DRIFT DETECTED" in shown(cells[1])
