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
   to an ``s3://`` URL (encoding included, what a user does without us); medians of ``--repeat``
   rounds, and the HTTP requests our save made (counted in moto's request log). Our save of the
   same frame to a local folder is timed too: what encoding and hashing cost with no network.
   ``--s3-only`` runs these rows alone; ``--link-mbps N`` puts moto behind a relay that carries N
   MB/s each way (``tests/benchmarks/link.py``), so that both sides pay for a network, as against a
   real S3; by default they talk to moto on loopback.
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

from tests.engines import S3_KEYS, Engine, mlflow_engine, moto_engine  # noqa: E402
from tests.lab_server import free_port  # noqa: E402


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


def snapshot_to_s3(
    endpoint: str, rows: int, tmp: Path, repeat: int = 1, log: Path | None = None
) -> tuple[float, float, float, float, int, int]:
    """Medians over ``repeat`` rounds (a fresh bucket each): ours, the s3fs put, to_parquet,
    ours to a local folder; the Parquet file's size and the HTTP requests of our save (from
    moto's request log)."""
    import statistics

    rounds = [snapshot_round(endpoint, rows, tmp, log) for _ in range(repeat)]
    ours, theirs, direct, local = (statistics.median(r[i] for r in rounds) for i in range(4))
    return ours, theirs, direct, local, rounds[0][4], rounds[0][5]


def _logged(log: Path | None) -> int:
    return log.read_text(errors="replace").count(" HTTP/1.1") if log is not None else 0


def snapshot_round(
    endpoint: str, rows: int, tmp: Path, log: Path | None
) -> tuple[float, float, float, float, int, int]:
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
    logged = _logged(log)
    started = time.perf_counter()
    saved = mlops.snapshot(frame, "bench")
    ours = time.perf_counter() - started
    requests = _logged(log) - logged
    assert saved.bytes_written > 0 and mlops.load("bench").equals(frame)

    os.environ["MLOPS_SNAPSHOT_STORE"] = str(tmp / f"local-{bucket}")
    MLOps.clear_instance()
    started = time.perf_counter()
    mlops.snapshot(frame, "bench")
    local = time.perf_counter() - started
    return ours, theirs, direct, local, parquet.stat().st_size, requests


def link_engine(s3: Engine, mbps: float, folder: Path) -> Engine:
    """``link.py`` relaying to ``s3`` at ``mbps`` MB/s each way, as an engine: ready once moto's
    health URL answers through it."""
    port = free_port()
    to = s3.url.removeprefix("http://")
    script = Path(__file__).with_name("link.py")
    argv = [sys.executable, str(script), "--port", str(port), "--to", to, "--mbps", str(mbps)]
    url = f"http://127.0.0.1:{port}"
    return Engine(f"{mbps:g} MB/s link", argv, url, s3.ready_path, folder / "link.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=50_000, help="values for row 1")
    parser.add_argument("--calls", type=int, default=20_000, help="mlops.log calls for row 2")
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the snapshot")
    parser.add_argument("--repeat", type=int, default=3, help="snapshot rounds (medians)")
    parser.add_argument("--s3-only", action="store_true", help="rows 3-4 only (no MLflow)")
    parser.add_argument(
        "--link-mbps", type=float, default=0.0, help="S3 behind a link of N MB/s (0: loopback)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chdir(folder)
        os.environ["MLOPS_HOME"] = str(folder / ".mlops")
        server = None if args.s3_only else mlflow_engine(folder / "mlflow").start()
        s3 = moto_engine(folder / "moto").start()
        link: Engine | None = None
        endpoint = s3.url
        rows = []
        try:
            if args.link_mbps > 0:
                link = link_engine(s3, args.link_mbps, folder).start()
                endpoint = link.url
            if server is not None:
                rows = tracking_rows(server.url, folder, args.values, args.calls)
            ours_s3, theirs_s3, direct_s3, local, size, requests = snapshot_to_s3(
                endpoint, args.rows, folder, args.repeat, s3.log
            )
        finally:
            if server is not None:
                server.stop()
            if link is not None:
                link.stop()
            s3.stop()
            os.chdir(ROOT)

    mb = size / 1e6
    where = f"moto behind a {args.link_mbps:g} MB/s link" if link is not None else "moto"
    rows += [
        (
            f"{args.rows:,}-row snapshot to S3 ({where}), median of {args.repeat}",
            f"{ours_s3:.2f} s ({mb / ours_s3:.1f} MB/s of Parquet-equivalent, {requests} requests)",
            f"{theirs_s3:.2f} s ({mb / theirs_s3:.1f} MB/s) s3fs put of {mb:.1f} MB Parquet",
            f"{theirs_s3 / ours_s3:.2f}x",
        ),
        (
            f"{args.rows:,}-row snapshot to S3 vs to_parquet('s3://...')",
            f"{ours_s3:.2f} s",
            f"{direct_s3:.2f} s pandas to_parquet (zstd) through s3fs",
            f"{direct_s3 / ours_s3:.2f}x",
        ),
        (
            f"{args.rows:,}-row snapshot to a local folder (no network) vs the s3fs put",
            f"{local:.2f} s",
            f"{theirs_s3:.2f} s s3fs put of {mb:.1f} MB Parquet",
            f"{theirs_s3 / local:.2f}x",
        ),
    ]
    header = ("case", "ours", "peer", "ratio (peer time / ours)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def tracking_rows(url: str, folder: Path, values: int, calls: int) -> list[tuple[str, ...]]:
    """Rows 1-2: values over HTTP and the per-call cost."""
    from jupyter_mlops.tracking.client import mlflow_client

    sqlite = f"sqlite:///{folder / '.mlops' / 'mlflow.db'}"
    mlflow_client(sqlite)  # migrate the local store before timing
    per_call(url, 100)  # warm: imports, experiment
    ours_flush, theirs_flush = values_written(url, values)
    http_call = per_call(url, calls)
    sqlite_call = per_call(sqlite, calls)
    peer_call = log_metric_per_call(url, 200)
    return [
        (
            f"{values:,} values over HTTP (run end incl.)",
            f"{ours_flush:.2f} s ({values / ours_flush:,.0f}/s)",
            f"{theirs_flush:.2f} s ({values / theirs_flush:,.0f}/s) log_batch",
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
    ]


if __name__ == "__main__":
    main()
