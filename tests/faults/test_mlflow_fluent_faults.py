"""Ctrl-C while a %%track cell writes through MLflow's own API: MLflow's globals come back.

A real kernel runs a cell that logs with ``mlflow.log_metric`` (and ``mlops.log``) in a loop;
it is interrupted at a random moment: while the run opens, or inside MLflow's SQLite write.
After every trial the run is KILLED, MLflow has no active run, its tracking URI and environment
are as before the cell, and no second store appeared in the working folder.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

from jupyter_client.manager import start_new_kernel

from tests.kernel_support import ok, run_cell
from tests.tracking_support import all_runs, running_runs

TRIALS = 8
SPIN = """%%track --experiment spin
import itertools
for n in itertools.count():
    mlflow.log_metric("fluent", n, step=n)
    mlops.log(ours=n)
"""
# An expression, not print(): its result is sent before the kernel goes idle, even under load.
STATE = (
    "' '.join(map(str, (mlflow.active_run(), os.environ.get('MLFLOW_TRACKING_URI'),"
    " mlflow.get_tracking_uri() == default_uri)))"
)


def test_interrupts_inside_mlflow_writes_restore_its_globals(
    template_store: Path, tmp_path: Path
) -> None:
    home = tmp_path / ".mlops"
    home.mkdir()
    shutil.copy(template_store, home / "mlflow.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_"))}
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env)
    rng = random.Random(13)
    outcomes = []
    try:
        ok(kc, "%load_ext jupyter_mlops\nimport jupyter_mlops as mlops, mlflow, os")
        ok(kc, "default_uri = mlflow.get_tracking_uri()")
        for trial in range(TRIALS):
            msg_id = kc.execute(SPIN, stop_on_error=False)  # the next cell must not be aborted
            deadline = time.monotonic() + 60
            while len(all_runs(home)) == trial:  # this trial's run is open: the cell runs
                assert time.monotonic() < deadline, f"trial {trial}: the run never started"
                time.sleep(0.05)
            time.sleep(rng.uniform(0.05, 0.6))  # the fault: Ctrl-C at a random moment
            km.interrupt_kernel()
            # Bounded generously: on a loaded machine SQLite's busy waits can stretch the end.
            reply = kc.get_shell_msg(timeout=120)
            while reply["parent_header"].get("msg_id") != msg_id:
                reply = kc.get_shell_msg(timeout=120)
            state = run_cell(kc, STATE)
            left_running = len(running_runs(home))
            outcomes.append(
                (reply["content"].get("ename"), state.ename or state.text.strip(), left_running)
            )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert outcomes == [("KeyboardInterrupt", "'None None True'", 0)] * TRIALS
    runs = all_runs(home)
    assert [r.info.status for r in runs] == ["KILLED"] * TRIALS
    # Some interrupts land while the run is still being opened, before the loop logs anything.
    assert any("fluent" in r.data.metrics for r in runs)
    assert running_runs(home) == []
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
