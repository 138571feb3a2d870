"""``%score`` under faults: a scorer killed or failing mid-run, a Ctrl-C, the kernel killed.

A killed scoring process never leaves a partial predictions version (the snapshot is published
atomically after the last batch, so a kill at the very end leaves either nothing or the whole);
its run ends FAILED (KILLED on Ctrl-C) saying why, never RUNNING; no scorer outlives its kernel;
and scoring again afterwards works.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest

import jupyter_mlops as mlops
from jupyter_mlops import records
from jupyter_mlops.serving.scoring import ScoringFailed
from tests.process_support import survivors
from tests.registry_support import client

ROWS, BATCH = 120, 10  # 12 batches
WAIT_S = 120.0


def scorers(parent: int | None = None) -> list[psutil.Process]:
    root = psutil.Process(parent or os.getpid())
    found = []
    for child in root.children(recursive=True):
        try:
            if "jupyter_mlops.serving.score_worker" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


def register_slow_model() -> None:
    """A model that takes a moment per batch, so there is a mid-run to kill."""

    def slow_double(model_input: pd.DataFrame) -> list[float]:
        import time as clock

        clock.sleep(0.1)
        if (model_input["x"] < 0).any():
            raise ValueError("x must not be negative")
        return (model_input["x"] * 2).tolist()

    with mlops.track("slow"):
        mlops.register(slow_double, "slow")


def killer(at: int, fault: str) -> Callable[[int, int | None], None]:
    """A progress callback that makes ``fault`` happen once ``at`` rows are done."""

    def progress(done: int, total: int | None) -> None:
        if done < at or fault == "error":
            return
        if fault == "interrupt":
            raise KeyboardInterrupt
        for process in scorers():
            process.send_signal(signal.SIGKILL)

    return progress


def scoring_runs(home: Path) -> list[Any]:
    store = client(home)
    experiment = store.get_experiment_by_name("Default").experiment_id
    return store.search_runs(
        [experiment],
        filter_string=f"tags.`{records.TAG_SCORE_MODEL}` = 'slow/1'",
        order_by=["attributes.start_time ASC"],
    )


def test_a_killed_or_interrupted_scorer_publishes_no_partial_version_and_a_rerun_works(
    store: Path,
) -> None:
    from jupyter_mlops.context import current_settings
    from jupyter_mlops.serving.scoring import score

    register_slow_model()
    frame = pd.DataFrame({"x": range(ROWS)})
    # The model raises on a negative x: in the 8th batch of the "error" trial.
    poisoned = frame.assign(x=frame.x.where(frame.index != 7 * BATCH + 3, -1))
    trials = [(BATCH, "kill"), (6 * BATCH, "interrupt"), (7 * BATCH, "error"), (ROWS, "kill")]
    outcomes = []
    for at, fault in trials:
        failure = KeyboardInterrupt if fault == "interrupt" else ScoringFailed
        with pytest.raises(failure) as raised:
            score(
                current_settings(),
                "slow",
                poisoned if fault == "error" else frame,
                name="doubled",
                batch_rows=BATCH,
                progress=killer(at, fault),
            )
        assert survivors([p.pid for p in scorers()], 10.0) == []
        published = mlops.snapshots("doubled")
        message = str(raised.value)
        if fault == "kill":
            assert "killed by SIGKILL" in message and "\n" not in message
            assert f"after {at:,} of {ROWS:,} rows" in message
        if fault == "error":  # the model's own error, in one line
            assert f"after {at:,} of {ROWS:,} rows: ValueError: x must not be negative" in message
        if at < ROWS:
            assert published.empty, f"a partial version after a {fault} at {at} rows"
        else:  # killed after the last batch: nothing, or the whole predictions
            assert published.empty or mlops.load("doubled@v1").prediction.tolist() == [
                2 * x for x in range(ROWS)
            ]
        outcomes.append(("published" if not published.empty else "nothing", fault, at))

    runs = scoring_runs(store)
    assert [r.info.status for r in runs] == ["FAILED", "KILLED", "FAILED", "FAILED"], outcomes
    assert "SIGKILL" in runs[0].data.tags[records.TAG_ERROR]

    again = score(current_settings(), "slow", frame, name="doubled", batch_rows=BATCH)
    assert mlops.load(again.ref).prediction.tolist() == [2 * x for x in range(ROWS)]
    assert scoring_runs(store)[-1].info.status == "FINISHED"
    print("fault outcomes:", outcomes)


KERNEL = textwrap.dedent(
    """
    import pandas as pd
    import jupyter_mlops as mlops

    mlops.score("slow", pd.DataFrame({"x": range(100_000)}), name="orphaned", batch_rows=10)
    """
)


def test_a_scorer_dies_with_its_kernel(store: Path, tmp_path: Path) -> None:
    register_slow_model()
    kernel = subprocess.Popen(
        [sys.executable, "-c", KERNEL],
        cwd=tmp_path,
        env={**os.environ, "MLOPS_HOME": str(store)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        found: list[psutil.Process] = []
        while not found and time.monotonic() < deadline and kernel.poll() is None:
            found = scorers(kernel.pid)
            time.sleep(0.1)
        assert found, "the scoring process never started"
        kernel.send_signal(signal.SIGKILL)
        kernel.wait(timeout=30)
        assert survivors([p.pid for p in found], 10.0) == []
        assert mlops.snapshots("orphaned").empty
    finally:
        if kernel.poll() is None:
            kernel.kill()
            kernel.wait()
        # The killed kernel's run stays RUNNING until a kernel of the store sweeps it, as for
        # any run whose owner died: end it so the store fixture's check is about scoring alone.
        for run in scoring_runs(store):
            if run.info.status == "RUNNING":
                client(store).set_terminated(run.info.run_id, "KILLED")
