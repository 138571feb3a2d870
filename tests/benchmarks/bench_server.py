"""``GET runs`` (a page of 100) through a real Jupyter server vs MLflow's own search for that page.

The store is a real MLflow SQLite store; its runs (3 params, 4 metrics, 3 tags each) are bulk
inserted with SQL after MLflow created the schema and the experiment, because creating 10,000
runs through the client would take minutes and measure nothing of interest here.

    python tests/benchmarks/bench_server.py              # 2,000 runs
    python tests/benchmarks/bench_server.py --runs 10000  # the issue's size
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

EXPERIMENT = "bench"
PAGE = 100


def fill_store(home: Path, runs: int) -> str:
    from jupyter_mlops.tracking.client import mlflow_client

    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = mlflow_client(uri)
    experiment_id = int(client.create_experiment(EXPERIMENT))
    now = int(time.time() * 1000) - runs * 1000
    run_rows, params, metrics, latest, tags = [], [], [], [], []
    for i in range(runs):
        run_id = uuid.uuid4().hex
        start = now + i * 1000
        run_rows.append(
            (
                run_id,
                f"run-{i}",
                "LOCAL",
                "",
                "",
                "bench",
                "FINISHED",
                start,
                start + 500,
                "",
                "active",
                str(home / "artifacts" / run_id),
                experiment_id,
            )
        )
        params += [
            ("lr", str(0.1 / (1 + i % 7)), run_id),
            ("epochs", str(5 + i % 3), run_id),
            ("model", "mlp" if i % 2 else "cnn", run_id),
        ]
        for key, value in (
            ("loss", 1 / (1 + i)),
            ("val_acc", (i % 100) / 100),
            ("f1", 0.5),
            ("auc", 0.7),
        ):
            metrics.append((key, value, start, run_id, 0, 0))
            latest.append((key, value, start, 0, 0, run_id))
        tags += [
            ("mlflow.runName", f"run-{i}", run_id),
            ("mlflow.user", "bench", run_id),
            ("mlops.notebook", "/bench/bench.ipynb", run_id),
        ]
    with sqlite3.connect(home / "mlflow.db") as db:
        db.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id,"
            " status, start_time, end_time, source_version, lifecycle_stage, artifact_uri,"
            " experiment_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            run_rows,
        )
        db.executemany('INSERT INTO params ("key", value, run_uuid) VALUES (?,?,?)', params)
        db.executemany(
            'INSERT INTO metrics ("key", value, timestamp, run_uuid, step, is_nan)'
            " VALUES (?,?,?,?,?,?)",
            metrics,
        )
        db.executemany(
            'INSERT INTO latest_metrics ("key", value, timestamp, step, is_nan, run_uuid)'
            " VALUES (?,?,?,?,?,?)",
            latest,
        )
        db.executemany('INSERT INTO tags ("key", value, run_uuid) VALUES (?,?,?)', tags)
    return uri


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(root: Path) -> Iterator[tuple[str, str]]:
    """A real Jupyter server on 127.0.0.1 serving ``root``, ready: yields (base URL, token).
    Its log is printed when the block fails; it is stopped afterwards."""
    token, port = secrets.token_hex(16), free_port()
    log = (root / "server.log").open("wb")
    env = {**os.environ, "MLOPS_EXPERIMENT": EXPERIMENT}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
         "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        yield base, token
    except Exception:
        print((root / "server.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else samples[0]


def timed_round_robin(calls: list[Callable[[], object]], repeats: int) -> list[list[float]]:
    """Milliseconds per call; the calls take turns, so background load hits each alike."""
    for call in calls:
        call()  # warm: imports, connection pool, SQLite page cache
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for call, out in zip(calls, samples, strict=True):
            started = time.perf_counter()
            call()
            out.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-server-") as folder:
        root = Path(folder)
        home = root / ".mlops"
        home.mkdir()
        (root / "bench.ipynb").write_text("{}")
        started = time.perf_counter()
        uri = fill_store(home, args.runs)
        print(f"store: {args.runs:,} runs in {time.perf_counter() - started:.1f}s ({uri})")

        with running_server(root) as (base, token):

            def get_page(page_token: str | None = None) -> dict:  # type: ignore[type-arg]
                query = {"path": "bench.ipynb", "limit": str(PAGE)}
                if page_token:
                    query["page_token"] = page_token
                request = urllib.request.Request(
                    f"{base}/jupyter-mlops/api/runs?{urllib.parse.urlencode(query)}",
                    headers={"Authorization": f"token {token}"},
                )
                with urllib.request.urlopen(request) as response:
                    return json.loads(response.read())  # type: ignore[no-any-return]

            first = get_page()
            assert len(first["runs"]) == PAGE and first["next_page_token"], first.keys()
            middle_token = first["next_page_token"]
            for _ in range(args.runs // PAGE // 2 - 1):
                middle_token = get_page(middle_token)["next_page_token"]

            import mlflow
            from mlflow.tracking import MlflowClient

            mlflow.set_tracking_uri(uri)
            client = MlflowClient(uri)
            exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
            order = ["attributes.start_time DESC"]
            peer_first = mlflow.search_runs([exp_id], max_results=PAGE, order_by=order)
            ours_ids = [r["run_id"] for r in first["runs"]]
            assert list(peer_first["run_id"]) == ours_ids, "not the same page"

            calls: dict[str, Callable[[], object]] = {
                "GET runs, first page (HTTP, JSON)": get_page,
                "GET runs, middle page via page_token": lambda: get_page(middle_token),
                "mlflow.search_runs (DataFrame), first page": lambda: mlflow.search_runs(
                    [exp_id], max_results=PAGE, order_by=order
                ),
                "MlflowClient.search_runs, first page": lambda: client.search_runs(
                    [exp_id], max_results=PAGE, order_by=order
                ),
            }
            rows = list(
                zip(calls, timed_round_robin(list(calls.values()), args.repeats), strict=True)
            )

    ours = p95(rows[0][1])
    print(f"\nGET runs: page of {PAGE} out of {args.runs:,} runs, {args.repeats} repeats")
    print(f"{'what':<46}{'median ms':>10}{'p95 ms':>9}{'p95 / ours':>12}")
    for name, samples in rows:
        print(
            f"{name:<46}{statistics.median(samples):>10.1f}{p95(samples):>9.1f}"
            f"{p95(samples) / ours:>12.2f}"
        )
    verdict = "meets" if ours < 200 else "MISSES"
    print(f"\nours p95 {ours:.1f} ms {verdict} the 200 ms target")


if __name__ == "__main__":
    main()
