"""What a %%track cell records, and what MLflow's own API sees inside it, in a real kernel.

One kernel serves the module (starting one costs seconds on two cores); each test writes to
its own experiment of one real SQLite store and checks that nothing is left RUNNING.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

from tests.kernel_support import ok, run_cell
from tests.tracking_support import client_for, running_runs


@pytest.fixture(scope="module")
def kernel(
    template_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Path, Path]]:
    """(kernel client, its cwd, its store) for a kernel with ``%load_ext jupyter_mlops`` done."""
    cwd = tmp_path_factory.mktemp("cells")
    home = cwd / ".mlops"
    home.mkdir()
    shutil.copy(template_store, home / "mlflow.db")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "MLOPS_")) and k != "JPY_SESSION_NAME"
    }
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=env)
    try:
        ok(kc, "%load_ext jupyter_mlops\nimport jupyter_mlops as mlops\nimport mlflow, os")
        yield kc, cwd, home
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def runs_of(home: Path, experiment: str) -> list[Any]:
    client = client_for(home)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return list(client.search_runs([found.experiment_id], max_results=100))


@pytest.fixture
def kc(kernel: tuple[Any, Path, Path]) -> Iterator[Any]:
    client, _, home = kernel
    yield client
    assert running_runs(home) == [], "runs left RUNNING"
    # Nothing of our run is left in MLflow's globals for the next cell.
    assert ok(client, "print(mlflow.active_run())").strip() == "None"


def test_params_the_cell_reassigns_are_the_values_it_used(kernel: Any, kc: Any) -> None:
    _, _, home = kernel
    ok(kc, "lr = 0.5\ncfg = {'depth': 3}")
    ok(kc, "%%track --experiment reassign --params lr cfg.depth\nlr = 0.2\ncfg['depth'] = 7")
    (run,) = runs_of(home, "reassign")
    assert run.data.params == {"lr": "0.2", "cfg.depth": "7"}
    listed = ok(kc, "print(mlops.runs(experiment='reassign')['params.lr'].tolist())")
    assert listed.strip() == "['0.2']"


def test_params_assigned_from_a_magic_are_found(kernel: Any, kc: Any) -> None:
    _, cwd, home = kernel
    ok(kc, "%%track --experiment magic-cell --params here\nhere = %pwd")
    ok(
        kc,
        "with mlops.track(experiment='magic-cell', param_names=['there']):\n    there = %pwd\n",
    )
    params = sorted(tuple(r.data.params.items()) for r in runs_of(home, "magic-cell"))
    assert params == [(("here", str(cwd)),), (("there", str(cwd)),)]


def test_mlflow_fluent_api_and_sklearn_autolog_land_in_our_run(kernel: Any, kc: Any) -> None:
    _, cwd, home = kernel
    store_uri = f"sqlite:///{home / 'mlflow.db'}"
    before = ok(kc, "print(mlflow.get_tracking_uri())").strip()
    assert before == f"sqlite:///{cwd}/mlflow.db"  # MLflow's default: the folder's mlflow.db
    text = ok(
        kc,
        "%%track fluent --experiment fluent\n"
        "import os\n"
        "import numpy as np\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "print('active', mlflow.active_run().info.run_id)\n"
        "print('uri', mlflow.get_tracking_uri())\n"
        "print('registry', mlflow.get_registry_uri())\n"
        "print('experiment', mlflow.get_experiment(\n"
        "    mlflow.active_run().info.experiment_id).name)\n"
        "mlflow.log_metric('direct', 1.5)\n"
        "mlflow.sklearn.autolog(log_models=False, log_datasets=False, silent=True)\n"
        "X = np.arange(40, dtype=float).reshape(20, 2)\n"
        "LogisticRegression(C=0.25).fit(X, np.arange(20) % 2)\n"
        "mlflow.sklearn.autolog(disable=True)\n"
        "None\n",
    )
    (run,) = runs_of(home, "fluent")
    lines = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    assert lines["active"] == run.info.run_id
    assert lines["uri"] == store_uri and lines["registry"] == store_uri
    assert lines["experiment"] == "fluent"
    assert run.info.status == "FINISHED"
    assert run.data.metrics["direct"] == 1.5
    assert run.data.params["C"] == "0.25"  # autolog's params and metrics, in our run
    assert "training_score" in run.data.metrics
    assert run.data.tags["mlflow.user"]
    # No second run anywhere, no store in the working folder, and MLflow's default is back.
    assert [r.info.run_id for r in runs_of(home, "Default")] == []
    assert not (cwd / "mlflow.db").exists() and not (cwd / "mlruns").exists()
    after = ok(kc, "print(mlflow.get_tracking_uri(), os.environ.get('MLFLOW_TRACKING_URI'))")
    assert after.split() == [before, "None"]


def test_the_python_api_run_is_mlflows_active_run_too(kernel: Any, kc: Any) -> None:
    _, _, home = kernel
    text = ok(
        kc,
        "with mlops.track('api', experiment='api-form') as tracked:\n"
        "    print(mlflow.active_run().info.run_id == tracked.run_id)\n"
        "    mlflow.log_metric('direct', 2.0)\n",
    )
    assert text.splitlines()[0] == "True"
    (run,) = runs_of(home, "api-form")
    assert run.data.metrics == {"direct": 2.0}


def test_fluent_state_is_restored_after_a_failing_cell(kernel: Any, kc: Any) -> None:
    _, _, home = kernel
    failed = run_cell(
        kc, "%%track --experiment failing\nmlflow.log_param('seen', 'yes')\nraise ValueError('x')"
    )
    assert (failed.status, failed.ename) == ("error", "ValueError")
    (run,) = runs_of(home, "failing")
    assert run.info.status == "FAILED" and run.data.params == {"seen": "yes"}
    state = ok(kc, "print(os.environ.get('MLFLOW_TRACKING_URI'), mlflow.active_run())")
    assert state.split() == ["None", "None"]


def test_a_run_opened_with_mlflow_start_run_becomes_the_parent(kernel: Any, kc: Any) -> None:
    _, _, home = kernel
    store_uri = f"sqlite:///{home / 'mlflow.db'}"
    ok(
        kc,
        f"mlflow.set_tracking_uri({store_uri!r})\n"
        "mlflow.set_experiment('parent')\n"
        "outer = mlflow.start_run(run_name='outer')",
    )
    ok(kc, "%%track inner --experiment parent\nmlflow.log_metric('inner_metric', 1)")
    state = ok(kc, "print(mlflow.active_run().info.run_id == outer.info.run_id)")
    assert state.strip() == "True"
    ok(kc, "mlflow.log_metric('outer_metric', 2)\nmlflow.end_run()\nmlflow.set_tracking_uri(None)")
    runs = {r.info.run_name: r for r in runs_of(home, "parent")}
    assert set(runs) == {"outer", "inner"}
    outer, inner = runs["outer"], runs["inner"]
    assert inner.data.tags["mlflow.parentRunId"] == outer.info.run_id
    assert inner.data.metrics == {"inner_metric": 1.0}
    assert outer.data.metrics == {"outer_metric": 2.0}
    assert outer.info.status == "FINISHED"  # closed by the user, not by us


def test_syntax_error_is_one_line_and_starts_no_run(kernel: Any, kc: Any) -> None:
    _, _, home = kernel
    result = run_cell(kc, "%%track --experiment syntax\nx = 1\ny = (\n")
    assert (result.status, result.ename) == ("error", "UsageError")
    # IPython prints a UsageError as this one line, with no traceback.
    message = "%%track: SyntaxError at line 3: '(' was never closed; fix the cell"
    assert result.evalue.startswith(message) and "\n" not in result.evalue
    assert result.text.strip().startswith(f"UsageError: {message}")
    assert "Traceback" not in result.text
    assert runs_of(home, "syntax") == []
