"""Benchmark: ``mlops.log`` / ``%%track`` against MLflow's own calls on the same SQLite store.

Run: ``python tests/benchmarks/bench_tracking.py`` (100,000 buffered values, 300 synchronous
``mlflow.log_metric`` calls) or ``--full`` (1,000 synchronous calls). Rows:

1. per call in a tight loop: ``mlops.log(x=i)`` against ``mlflow.log_metric("x", i, step=i)``
   (the call a training loop would make); all values are checked present after the run ends;
2. 100,000 values written: ``mlops.log`` until the run has ended (everything flushed) against
   ``MlflowClient.log_batch`` with 1,000 ``Metric`` objects per call (MLflow's fastest path);
3. an empty cell: ``%%track\\npass`` against ``pass`` in the same IPython shell (the overhead),
   with ``with mlflow.start_run(): pass`` for reference.

Every side uses one freshly migrated SQLite store per process, created before timing starts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def fmt_rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


def bench_per_call(sync_calls: int, buffered_calls: int) -> tuple[float, float]:
    import mlflow
    from mlflow.tracking import MlflowClient

    import jupyter_mlops as mlops
    from jupyter_mlops.context import current_settings

    uri = current_settings().tracking_uri
    mlflow.set_tracking_uri(uri)
    with mlops.track("bench-log", experiment="bench") as run:
        started = time.perf_counter()
        for i in range(buffered_calls):
            mlops.log(x=i)
        ours = (time.perf_counter() - started) / buffered_calls
    client = MlflowClient(uri)
    assert len(client.get_metric_history(run.run_id, "x")) == buffered_calls

    experiment = mlflow.set_experiment("bench")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as peer:
        started = time.perf_counter()
        for i in range(sync_calls):
            mlflow.log_metric("x", i, step=i)
        theirs = (time.perf_counter() - started) / sync_calls
    assert len(client.get_metric_history(peer.info.run_id, "x")) == sync_calls
    return ours, theirs


def bench_flush(values: int) -> tuple[float, float]:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    import jupyter_mlops as mlops
    from jupyter_mlops.context import current_settings

    client = MlflowClient(current_settings().tracking_uri)
    started = time.perf_counter()
    with mlops.track("bench-flush", experiment="bench") as run:
        for i in range(values):
            mlops.log(x=i)
    ours = time.perf_counter() - started
    assert len(client.get_metric_history(run.run_id, "x")) == values

    exp = client.get_experiment_by_name("bench")
    peer = client.create_run(exp.experiment_id)
    now = int(time.time() * 1000)
    started = time.perf_counter()
    for start in range(0, values, 1000):
        batch = [Metric("x", float(i), now, i) for i in range(start, min(start + 1000, values))]
        client.log_batch(peer.info.run_id, metrics=batch, synchronous=True)
    theirs = time.perf_counter() - started
    client.set_terminated(peer.info.run_id)
    assert len(client.get_metric_history(peer.info.run_id, "x")) == values
    return ours, theirs


def bench_empty_cell(repeats: int) -> tuple[float, float, float]:
    import mlflow
    from IPython.testing.globalipapp import start_ipython

    import jupyter_mlops
    from jupyter_mlops.context import current_settings

    shell = start_ipython()
    jupyter_mlops.load_ipython_extension(shell)
    shell.run_cell("%%track --experiment bench\npass", cell_id="warm")  # imports, experiment

    def timed(source: str) -> float:
        times = []
        for i in range(repeats):
            started = time.perf_counter()
            result = shell.run_cell(source, cell_id=f"cell-{i}")
            times.append(time.perf_counter() - started)
            assert result.success
        return statistics.median(times)

    plain = timed("pass")
    tracked = timed("%%track --experiment bench\npass")
    mlflow.set_tracking_uri(current_settings().tracking_uri)
    exp = mlflow.set_experiment("bench")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        with mlflow.start_run(experiment_id=exp.experiment_id):
            pass
        times.append(time.perf_counter() - started)
    return tracked - plain, statistics.median(times), plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=100_000, help="values for the flush row")
    parser.add_argument("--full", action="store_true", help="1,000 synchronous log_metric calls")
    parser.add_argument("--repeats", type=int, default=20, help="empty cells per side")
    args = parser.parse_args()
    sync_calls = 1000 if args.full else 300

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        os.environ["MLOPS_HOME"] = str(Path(tmp) / ".mlops")
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        from jupyter_mlops.context import current_settings
        from jupyter_mlops.tracking.client import mlflow_client

        mlflow_client(current_settings().tracking_uri)  # migrate the store before timing

        ours_call, theirs_call = bench_per_call(sync_calls, 20_000)
        ours_flush, theirs_flush = bench_flush(args.values)
        overhead, peer_run, plain = bench_empty_cell(args.repeats)
        os.chdir(ROOT)  # IPython's exit hook reads the cwd

    rows = [
        (
            "per call: mlops.log vs mlflow.log_metric",
            f"{ours_call * 1e6:.2f} µs",
            f"{theirs_call * 1e6:,.0f} µs",
            f"{theirs_call / ours_call:,.0f}x faster",
        ),
        (
            f"{args.values:,} values written (run end incl.)",
            f"{ours_flush:.1f} s ({fmt_rate(args.values, ours_flush)})",
            f"{theirs_flush:.1f} s ({fmt_rate(args.values, theirs_flush)})",
            f"{theirs_flush / ours_flush:.2f}x",
        ),
        (
            "empty cell: %%track overhead vs mlflow.start_run",
            f"{overhead * 1e3:.0f} ms",
            f"{peer_run * 1e3:.0f} ms",
            f"(plain cell {plain * 1e3:.1f} ms)",
        ),
    ]
    widths = [
        max(len(r[i]) for r in [("case", "ours", "MLflow", "ratio"), *rows]) for i in range(4)
    ]
    for row in [("case", "ours", "MLflow", "ratio"), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
