"""``GET runs`` under load: N concurrent clients for S seconds against a real Jupyter server.

The peer is MLflow's own ``MlflowClient.search_runs`` for the same page, called by the same
number of threads in one process for the same time. The store is a real MLflow SQLite store with
its runs bulk-inserted (see bench_server.py). Prints p50/p95/errors and the ratio to the peer.

    python tests/benchmarks/bench_server_load.py                       # 5,000 runs, 20 x 30 s
    python tests/benchmarks/bench_server_load.py --clients 20 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import EXPERIMENT, PAGE, fill_store, running_server


def quantile(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100)[q - 1]


def hammer(call: Callable[[], object], clients: int, seconds: float) -> tuple[list[float], int]:
    """Latencies (ms) of every call that succeeded, and the count of failed calls."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                call()
            except Exception:
                with lock:
                    errors[0] += 1
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    return latencies, errors[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-server-load-") as folder:
        root = Path(folder)
        home = root / ".mlops"
        home.mkdir()
        (root / "bench.ipynb").write_text("{}")
        uri = fill_store(home, args.runs)
        with running_server(root) as (base, token):
            query = urllib.parse.urlencode({"path": "bench.ipynb", "limit": str(PAGE)})
            request = urllib.request.Request(
                f"{base}/jupyter-mlops/api/runs?{query}",
                headers={"Authorization": f"token {token}"},
            )

            def get_page() -> object:
                with urllib.request.urlopen(request, timeout=60) as response:
                    page = json.loads(response.read())
                assert len(page["runs"]) == PAGE
                return page

            get_page()  # the first request imports MLflow
            ours = hammer(get_page, args.clients, args.seconds)

        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
        order = ["attributes.start_time DESC"]

        def search() -> object:
            found = client.search_runs([experiment_id], max_results=PAGE, order_by=order)
            assert len(found) == PAGE
            return found

        search()
        peer = hammer(search, args.clients, args.seconds)

    print(
        f"\nGET runs, page of {PAGE} of {args.runs:,} runs: "
        f"{args.clients} concurrent clients x {args.seconds:.0f} s"
    )
    print(f"{'what':<44}{'calls':>7}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'p95 / peer':>12}")
    peer_p95 = quantile(peer[0], 95)
    for name, (samples, errors) in (
        ("GET runs (HTTP, JSON, real Jupyter server)", ours),
        ("MlflowClient.search_runs (same threads)", peer),
    ):
        p95 = quantile(samples, 95)
        print(
            f"{name:<44}{len(samples):>7}{errors:>8}{quantile(samples, 50):>9.1f}"
            f"{p95:>9.1f}{p95 / peer_p95:>12.2f}"
        )
    ours_p95 = quantile(ours[0], 95)
    verdict = "meets" if ours_p95 < 1000 and ours[1] == 0 else "MISSES"
    print(f"\nours: p95 {ours_p95:.0f} ms, {ours[1]} errors: {verdict} the target (p95 < 1 s)")


if __name__ == "__main__":
    main()
