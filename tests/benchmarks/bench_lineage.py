"""Benchmark: ``mlops.lineage`` / ``mlops.reproduce`` against what plain MLflow can answer.

Run: ``python tests/benchmarks/bench_lineage.py`` (a store with 30 tracked runs, one model
version per 3 runs, a monitoring run with a drift report and two gate decisions) or ``--size N``
for N runs. Rows:

1. model -> run -> input datasets: ``mlops.lineage("net@champion")`` (which also finds the drift
   reports and gate decisions) against the MLflow client calls a user would write for the part
   MLflow records (alias -> version -> run -> dataset inputs; no drift, no decisions);
2. dataset -> runs -> models: ``mlops.lineage("train@v1")`` against ``search_runs`` on the dataset
   digest plus ``search_model_versions`` per run;
3. reproduce: ``mlops.reproduce(run)`` (data restored and re-hashed) against reading the run's
   params and dataset metadata (MLflow keeps no data: the frame itself cannot come back).

Hops found are printed beside each row: the peer's missing hops are the point of the comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def best_of(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def build_store(runs: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    import torch

    import jupyter_mlops as mlops

    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(20_000, 8)), columns=[f"x{i}" for i in range(8)])
    production = train + 1.0
    first = None
    for i in range(runs):
        with mlops.track(f"run-{i}", params={"i": i}, source="train()") as run:
            mlops.snapshot(train, "train")
            mlops.log(val_acc=0.9 + i / (runs * 100))
            if i % 3 == 0:
                mlops.register(torch.nn.Linear(8, 2), "net")
        first = first or run.run_id
    mlops.snapshot(production, "production")
    with mlops.track("monitor"):
        mlops.drift("train@v1", "production@v1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlops.promote("net/1", "champion", "metrics.val_acc >= 0.5")
        mlops.promote(
            "net/1", "prod", reference="train@v1", current="production@v1", warn_only=True
        )
    return {"run": first}


def peer_model(client: Any) -> int:
    version = client.get_model_version_by_alias("net", "champion")
    run = client.get_run(version.run_id)
    return 2 + len(run.inputs.dataset_inputs)  # version, run, datasets


def peer_dataset(client: Any, digest: str) -> int:
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"dataset.digest = '{digest}'")
    found = 1 + len(runs)
    for run in runs:
        found += len(client.search_model_versions(f"run_id = '{run.info.run_id}'"))
    return found


def peer_reproduce(client: Any, run_id: str) -> int:
    run = client.get_run(run_id)
    return len(run.data.params) + len(run.inputs.dataset_inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=30, help="tracked runs in the store")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-lineage-")
    os.chdir(folder)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"

    import jupyter_mlops as mlops
    from jupyter_mlops.context import current_settings
    from jupyter_mlops.lineage.records import mlflow_digest
    from jupyter_mlops.tracking.client import mlflow_client

    started = time.perf_counter()
    made = build_store(args.size)
    print(f"store: {args.size} runs, built in {time.perf_counter() - started:.1f} s\n")
    client = mlflow_client(current_settings().tracking_uri)
    traced = mlops.lineage("train@v1")
    snapshot_id = traced.node(traced.subject).attrs["id"]

    rows = []
    ours_t, ours = best_of(lambda: mlops.lineage("net@champion"))
    peer_t, peer = best_of(lambda: peer_model(client))
    rows.append(("model -> run -> data", ours_t, peer_t, len(ours.nodes), peer))
    ours_t, ours = best_of(lambda: mlops.lineage("train@v1"))
    peer_t, peer = best_of(lambda: peer_dataset(client, mlflow_digest(snapshot_id)))
    rows.append(("data -> runs -> models", ours_t, peer_t, len(ours.nodes), peer))
    ours_t, _ = best_of(lambda: mlops.reproduce(made["run"]))
    peer_t, peer = best_of(lambda: peer_reproduce(client, made["run"]))
    rows.append(("reproduce (20,000 x 8 frame)", ours_t, peer_t, "data+code+params", "metadata"))

    print(f"{'query':<30}{'ours':>10}{'MLflow':>10}{'ratio':>8}   found (ours / MLflow)")
    for name, ours_s, peer_s, found, peer_found in rows:
        print(
            f"{name:<30}{ours_s * 1000:>8.1f}ms{peer_s * 1000:>8.1f}ms{ours_s / peer_s:>7.1f}x"
            f"   {found} / {peer_found}"
        )


if __name__ == "__main__":
    main()
