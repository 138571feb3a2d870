"""%%track in real kernels: interrupts, nbconvert and papermill record the right notebook."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import start_new_kernel

from tests.notebooks import notebook
from tests.tracking_support import all_runs, client_for, run_cli, running_runs

SPIN = """%%track spin --experiment kernel
import time
n = 0
while True:
    mlops.log(x=n)
    n += 1
    time.sleep(0.0005)
"""


def execute(kc, code: str, timeout: float = 120) -> dict:
    """Run code in the kernel; return the execute_reply content and the stream text."""
    # stop_on_error=False throughout: after a failed (or interrupted) cell the kernel aborts the
    # requests already queued, so one sent right after the error reply could come back "aborted".
    msg_id = kc.execute(code, stop_on_error=False)
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    return dict(reply["content"])


def test_interrupt_kills_the_run_and_keeps_every_value(store: Path, tmp_path: Path):
    env = {**os.environ, "MLOPS_HOME": str(store)}
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env)
    try:
        assert (
            execute(kc, "%load_ext jupyter_mlops\nimport jupyter_mlops as mlops")["status"] == "ok"
        )
        msg_id = kc.execute(SPIN, stop_on_error=False)
        deadline = time.monotonic() + 60
        while not running_runs(store):  # the run is open and the loop is spinning
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.2)
        time.sleep(1.0)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"

        logged = int(kc_output(kc, "print(n)"))
        # The kernel is healthy and nothing leaked: the next cell has no active run, ours or
        # MLflow's, and MLflow's tracking URI is its default again.
        after = execute(kc, "mlops.log(x=1)")
        assert after["ename"] == "MLOpsUsageError"
        fluent = (
            "import mlflow, os\nprint(mlflow.active_run(), os.environ.get('MLFLOW_TRACKING_URI'))"
        )
        assert kc_output(kc, fluent) == "None None"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    run = next(r for r in all_runs(store) if r.info.run_name == "spin")
    assert run.info.status == "KILLED"
    history = client_for(store).get_metric_history(run.info.run_id, "x")
    assert logged > 100
    assert sorted(m.value for m in history) == [float(i) for i in range(logged)]


def kc_output(kc, code: str) -> str:
    msg_id = kc.execute(code, stop_on_error=False)
    text = []
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            text.append(msg["content"]["text"])
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(text).strip()


def tracked_notebook(folder: Path) -> tuple[Path, nbformat.NotebookNode]:
    path = folder / "tiny_train.ipynb"
    nb = notebook(
        "%load_ext jupyter_mlops\nimport jupyter_mlops as mlops",
        "%%track\nfor i in range(3):\n    mlops.log(loss=1.0 / (i + 1))",
        path=path,
    )
    return path, nb


def test_nbconvert_records_the_notebook_path_and_cell_id(store: Path, tmp_path: Path):
    path, nb = tracked_notebook(tmp_path)
    env = {**os.environ, "MLOPS_HOME": str(store)}
    run_cli(
        "jupyter", "nbconvert", "--to", "notebook", "--execute", path.name,
        "--output", "out.ipynb", cwd=tmp_path, env=env,
    )  # fmt: skip
    (run,) = all_runs(store)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["mlops.notebook"] == str(path.resolve())
    assert tags["mlflow.source.name"] == str(path.resolve())  # not ipykernel_launcher.py
    assert tags["mlflow.source.type"] == "NOTEBOOK"
    assert tags["mlops.notebook_source"] == "nbconvert"
    assert tags["mlops.cell_id"] == nb.cells[1].id
    assert client_for(store).get_experiment(run.info.experiment_id).name == "tiny_train"
    assert run.data.metrics == {"loss": 1.0 / 3}
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    text = "".join(o.get("data", {}).get("text/plain", "") for o in out.cells[1].outputs)
    assert "FINISHED in experiment 'tiny_train'" in text
    assert "metric loss = 0.333333 at step 2 (3 values)" in text


def test_papermill_records_the_input_notebook(store: Path, tmp_path: Path):
    path, nb = tracked_notebook(tmp_path)
    env = {**os.environ, "MLOPS_HOME": str(store)}
    run_cli("papermill", "--log-level", "WARNING", path.name, "out.ipynb", cwd=tmp_path, env=env)
    (run,) = all_runs(store)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlops.notebook"] == str(path.resolve())
    assert run.data.tags["mlops.notebook_source"] == "papermill"
    assert run.data.tags["mlops.cell_id"] == nb.cells[1].id
