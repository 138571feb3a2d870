"""Benchmark: tracking over HTTP against a real ``mlflow server``, snapshots to a real S3 API.

Run: ``python tests/benchmarks/bench_remote.py`` (needs ``.venv-mlflow`` and ``.venv-moto``, made
by ``.ci/run``). Both engines start on 127.0.0.1 (tests/engines.py), side by side for ours and
the peer:

1. values written over HTTP: ``mlops.log`` until the run has ended (everything flushed) against
   ``MlflowClient.log_batch`` with 1,000 ``Metric`` objects per call on the same server (MLflow's
   batch API is the ceiling; target >= 0.9x);
2. per call: ``mlops.log(x=i)`` with the HTTP server against the same call with a SQLite store
   (the buffered call must cost the same), and ``mlflow.log_metric`` over HTTP for reference;
3. a DataFrame snapshot to S3 (moto, through s3fs) against s3fs copying the equivalent Parquet
   file (zstd) to the same server (target >= 0.8x), and against ``DataFrame.to_parquet`` straight
   to an ``s3://`` URL (encoding included, what a user does without us).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.engines import S3_KEYS, mlflow_engine, moto_engine  # noqa: E402


def per_call(uri: str, calls: int) -> float:
    import jupyter_mlops as mlops
    from jupyter_mlops.config import MLOps

    os.environ["MLFLOW_TRACKING_URI"] = uri
    MLOps.clear_instance()
    with mlops.track("bench-per-call", experiment="bench"):
        started = time.perf_counter()
        for i in range(calls):
            mlops.log(x=i)
        took = (time.perf_counter() - started) / calls
    return took


def log_metric_per_call(uri: str, calls: int) -> float:
    import mlflow

    mlflow.set_tracking_uri(uri)
    experiment = mlflow.set_experiment("bench")
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        started = time.perf_counter()
        for i in range(calls):
            mlflow.log_metric("x", i, step=i)
        return (time.perf_counter() - started) / calls


def values_written(uri: str, values: int) -> tuple[float, float]:
    """bench_tracking's flush row, against the server at ``uri``."""
    from jupyter_mlops.config import MLOps
    from tests.benchmarks.bench_tracking import bench_flush

    os.environ["MLFLOW_TRACKING_URI"] = uri
    MLOps.clear_instance()
    return bench_flush(values)


def snapshot_to_s3(endpoint: str, rows: int, tmp: Path) -> tuple[float, float, float, int]:
    import fsspec
    import numpy as np
    import pandas as pd

    import jupyter_mlops as mlops
    from jupyter_mlops.config import MLOps

    os.environ.update(S3_KEYS, AWS_ENDPOINT_URL=endpoint)
    fs = fsspec.filesystem("s3")
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "x": rng.normal(size=rows),
            "y": rng.normal(size=rows),
            "n": rng.integers(0, 1000, rows),
            "plan": rng.choice(["basic", "pro", "team"], rows),
        }
    )
    parquet = tmp / "frame.parquet"
    frame.to_parquet(parquet, compression="zstd")

    started = time.perf_counter()
    fs.put_file(str(parquet), f"{bucket}/copy/frame.parquet")
    theirs = time.perf_counter() - started
    started = time.perf_counter()
    frame.to_parquet(f"s3://{bucket}/direct/frame.parquet", compression="zstd")
    direct = time.perf_counter() - started

    os.environ["MLOPS_SNAPSHOT_STORE"] = f"s3://{bucket}/snapshots"
    MLOps.clear_instance()
    started = time.perf_counter()
    saved = mlops.snapshot(frame, "bench")
    ours = time.perf_counter() - started
    assert saved.bytes_written > 0 and mlops.load("bench").equals(frame)
    return ours, theirs, direct, parquet.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=50_000, help="values for row 1")
    parser.add_argument("--calls", type=int, default=20_000, help="mlops.log calls for row 2")
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the snapshot")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chdir(folder)
        os.environ["MLOPS_HOME"] = str(folder / ".mlops")
        server = mlflow_engine(folder / "mlflow").start()
        s3 = moto_engine(folder / "moto").start()
        try:
            from jupyter_mlops.tracking.client import mlflow_client

            sqlite = f"sqlite:///{folder / '.mlops' / 'mlflow.db'}"
            mlflow_client(sqlite)  # migrate the local store before timing
            per_call(server.url, 100)  # warm: imports, experiment
            ours_flush, theirs_flush = values_written(server.url, args.values)
            http_call = per_call(server.url, args.calls)
            sqlite_call = per_call(sqlite, args.calls)
            peer_call = log_metric_per_call(server.url, 200)
            ours_s3, theirs_s3, direct_s3, size = snapshot_to_s3(s3.url, args.rows, folder)
        finally:
            server.stop()
            s3.stop()
            os.chdir(ROOT)

    mb = size / 1e6
    rows = [
        (
            f"{args.values:,} values over HTTP (run end incl.)",
            f"{ours_flush:.2f} s ({args.values / ours_flush:,.0f}/s)",
            f"{theirs_flush:.2f} s ({args.values / theirs_flush:,.0f}/s) log_batch",
            f"{theirs_flush / ours_flush:.2f}x",
        ),
        (
            "per call: mlops.log, HTTP server vs SQLite store",
            f"{http_call * 1e6:.2f} µs",
            f"{sqlite_call * 1e6:.2f} µs (ours on SQLite)",
            f"{sqlite_call / http_call:.2f}x",
        ),
        (
            "per call: mlops.log vs mlflow.log_metric over HTTP",
            f"{http_call * 1e6:.2f} µs",
            f"{peer_call * 1e6:,.0f} µs",
            f"{peer_call / http_call:,.0f}x faster",
        ),
        (
            f"{args.rows:,}-row snapshot to S3 (moto)",
            f"{ours_s3:.2f} s ({mb / ours_s3:.1f} MB/s of Parquet-equivalent)",
            f"{theirs_s3:.2f} s ({mb / theirs_s3:.1f} MB/s) s3fs put of {mb:.1f} MB Parquet",
            f"{theirs_s3 / ours_s3:.2f}x",
        ),
        (
            f"{args.rows:,}-row snapshot to S3 vs to_parquet('s3://...')",
            f"{ours_s3:.2f} s",
            f"{direct_s3:.2f} s pandas to_parquet (zstd) through s3fs",
            f"{direct_s3 / ours_s3:.2f}x",
        ),
    ]
    header = ("case", "ours", "peer", "ratio (peer time / ours)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
