"""Benchmark: the first tracked run of a fresh process, on a new store and on an existing one.

Run: ``python tests/benchmarks/bench_store_startup.py [--repeat N]``. Each sample is a new
Python process (as a new kernel would be) with ``jupyter_mlops`` imported (``%load_ext``) but
not MLflow. Timed from there until the first run has ended with one metric:

- ours: ``with mlops.track(...): mlops.log(x=1)``;
- plain MLflow: ``MlflowClient(uri)``, ``create_run``, ``log_metric``, ``set_terminated`` on a
  ``sqlite:///`` URI, so MLflow creates (migrates) a new store itself.

Rows: a new store on a machine that has never made one (our schema template is built first:
the cold case), a new store with the template cached (every later new store), and an
existing store. Medians of N samples; the ratio is plain MLflow's time over ours.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

OURS = """
import time
import jupyter_mlops as mlops
started = time.perf_counter()
with mlops.track("first", experiment="bench"):
    mlops.log(x=1)
print(time.perf_counter() - started)
"""

PLAIN = """
import sys, time
import jupyter_mlops
started = time.perf_counter()
from mlflow.tracking import MlflowClient
client = MlflowClient(sys.argv[1])
experiment = client.get_experiment_by_name("bench")
experiment_id = experiment.experiment_id if experiment else client.create_experiment("bench")
run = client.create_run(experiment_id, run_name="first")
client.log_metric(run.info.run_id, "x", 1)
client.set_terminated(run.info.run_id)
print(time.perf_counter() - started)
"""


def sample(code: str, home: Path, cache: Path) -> float:
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLOPS_HOME": str(home), "XDG_CACHE_HOME": str(cache)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{home / 'mlflow.db'}"],
        env=env,
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def measure(code: str, case: str, work: Path, repeat: int) -> float:
    times = []
    for i in range(repeat):
        home = work / f"{case}-{i}" / ".mlops"
        cache = work / "cache-shared"
        if case.endswith("cold"):
            cache = work / f"cache-{case}-{i}"
        elif case.endswith("existing"):
            sample(code, home, cache)  # make the store; the timed sample opens it
        times.append(sample(code, home, cache))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        sample(OURS, work / "warmup" / ".mlops", work / "cache-shared")  # page cache, template
        rows = []
        for case, label in (
            ("cold", "new store, first ever on this machine"),
            ("warm", "new store (schema template cached)"),
            ("existing", "existing store"),
        ):
            ours = measure(OURS, f"ours-{case}", work, args.repeat)
            plain = measure(PLAIN, f"plain-{case}", work, args.repeat)
            rows.append((label, ours, plain))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"first tracked run of a new process, median of {args.repeat} (seconds)")
    print(f"{'case':<40} {'jupyter-mlops':>14} {'plain MLflow':>13} {'ratio':>7}")
    for label, ours, plain in rows:
        print(f"{label:<40} {ours:>14.2f} {plain:>13.2f} {plain / ours:>6.2f}x")


if __name__ == "__main__":
    main()
