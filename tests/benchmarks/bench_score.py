"""Benchmark: ``%score`` against MLflow's own batch scoring, ``mlflow models predict``.

Run: ``python tests/benchmarks/bench_score.py [--rows 200000 1000000]``. One small scikit-learn
model (logistic regression on 4 features) scores the same rows three ways, wall clock from the
call to the predictions on disk, each in a fresh store:

- ours, snapshot: ``mlops.score(MODEL, "data@v1")``: a child process streams the snapshot chunk
  by chunk (verified), predicts in batches and saves the predictions as a snapshot, with its run;
- ours, DataFrame: ``mlops.score(MODEL, frame)``: the frame streamed to the child as Arrow;
- peer: ``mlflow models predict -m models:/... -i data.csv -t csv -o out.json --env-manager
  local`` (the CSV is written beforehand, untimed; MLflow reads it whole and writes JSON).

The ratio is the peer's time over ours (above 1: ours is faster). Both pay a Python process
start and MLflow's model load; ours also records a run and a content-addressed snapshot.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "bench-churn"


def frame(rows: int) -> object:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.normal(size=(rows, 4)), columns=["a", "b", "c", "d"])
    data.insert(0, "id", np.arange(rows))
    return data


def prepare(home: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    import jupyter_mlops as mlops
    from jupyter_mlops.context import current_settings
    from jupyter_mlops.tracking.client import mlflow_client

    train = frame(5_000)
    labels = (train.a + train.b > 0).astype(int)  # type: ignore[attr-defined]
    features = train[["a", "b", "c", "d"]]  # type: ignore[index]
    with mlops.track("train"):
        model = LogisticRegression().fit(features, labels)
        mlops.register(model, MODEL, input_example=features.head(3))
    mlflow_client(current_settings().tracking_uri).set_registered_model_alias(MODEL, "prod", "1")


def timed(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started


def run_size(rows: int, folder: Path) -> dict[str, float]:
    import jupyter_mlops as mlops
    from jupyter_mlops.config import MLOps

    home = folder / f"store-{rows}"
    os.environ["MLOPS_HOME"] = str(home)
    MLOps.clear_instance()
    prepare(home)
    data = frame(rows)
    mlops.snapshot(data, "data")
    csv = folder / f"data-{rows}.csv"
    data.to_csv(csv, index=False)  # type: ignore[attr-defined]
    quiet = {"progress": lambda done, total: None}
    from jupyter_mlops.context import current_settings
    from jupyter_mlops.serving.scoring import score

    results = {
        "ours, snapshot": timed(
            lambda: score(current_settings(), f"{MODEL}@prod", "data@v1", **quiet)  # type: ignore[arg-type]
        ),
        "ours, DataFrame": timed(
            lambda: score(current_settings(), f"{MODEL}@prod", data, name="df-scores", **quiet)  # type: ignore[arg-type]
        ),
    }
    env = {**os.environ, "MLFLOW_TRACKING_URI": current_settings().tracking_uri}
    command = [
        sys.executable, "-m", "mlflow", "models", "predict",
        "-m", f"models:/{MODEL}/1", "-i", str(csv), "-t", "csv",
        "-o", str(folder / f"out-{rows}.json"), "--env-manager", "local",
    ]  # fmt: skip
    results["peer: mlflow models predict"] = timed(
        lambda: subprocess.run(command, env=env, check=True, capture_output=True, timeout=1800)
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        os.chdir(tmp)
        table = {rows: run_size(rows, Path(tmp)) for rows in args.rows}
    print(f"{'rows':>10}  {'case':<30} {'seconds':>8} {'rows/s':>11} {'peer/ours':>9}")
    for rows, results in table.items():
        peer = results["peer: mlflow models predict"]
        for case, seconds in results.items():
            ratio = "" if case.startswith("peer") else f"{peer / seconds:.2f}x"
            print(f"{rows:>10,}  {case:<30} {seconds:>8.2f} {rows / seconds:>11,.0f} {ratio:>9}")


if __name__ == "__main__":
    main()
