"""``%serve`` vs stock MLflow serving of the same model, single-row requests, same client load.

Stock is MLflow's own FastAPI scoring app (``mlflow.pyfunc.scoring_server.app``) under uvicorn,
as ``mlflow models serve --env-manager local`` runs it; ours is ``%serve NAME@ALIAS`` with the
inference log on (every request), and a second endpoint with it off (``--log-sample 0``). All
three run at once and are loaded in turn at each concurrency by the same closed-loop client
(``jupyter_mlops.serving.bench.load``: keep-alive connections, every client on one asyncio loop
in a process of its own, whose CPU share is printed as "client CPU"). Then the
alias is moved under 32 clients: failed requests and the time until ``/version`` says so.

    python tests/benchmarks/bench_serving.py                 # 10 s per level, 1 worker each
    python tests/benchmarks/bench_serving.py --seconds 20 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from jupyter_mlops.config import resolve_settings  # noqa: E402
from jupyter_mlops.serving.bench import bench_result, load, run_clients  # noqa: E402
from jupyter_mlops.serving.launch import serve, stop  # noqa: E402
from jupyter_mlops.tracking.client import mlflow_client  # noqa: E402
from tests.serving_support import (  # noqa: E402
    TELLING_ROW,
    move_alias,
    register_two_versions,
    split_body,
    wait_until,
)

CLIENTS = (1, 8, 32)
JSON = "application/json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_stock(model_folder: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """MLflow's scoring app under uvicorn, as ``mlflow models serve`` starts it."""
    from mlflow.pyfunc import scoring_server

    port = free_port()
    env = {**os.environ, scoring_server._SERVER_MODEL_PATH: model_folder}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--workers",
         str(workers), "--log-level", "warning", "mlflow.pyfunc.scoring_server.app:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: ping(url), 120, "stock MLflow serving answers /ping")
    return process, url


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a server and its worker processes so far."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        times = process.cpu_times()
        total += times.user + times.system
    return total


def log_cost_us(home: Path, requests: int = 6400, batch: int = 1) -> tuple[float, float]:
    """(request path, flush) microseconds per logged single-row request, measured directly:
    the endpoint's ``TrafficWriter.log_rows`` call for micro-batches of ``batch`` requests, and
    the flush thread's Arrow + Parquet work."""
    import numpy as np
    import pandas as pd

    from jupyter_mlops.serving.traffic import TrafficWriter

    frames = [pd.DataFrame([TELLING_ROW] * batch, columns=["a", "b"])
              for _ in range(requests // batch)]  # fmt: skip
    outputs = np.zeros(batch, dtype=int)
    writer = TrafficWriter(home, "cost", f"b{batch}", flush_seconds=3600, max_records=requests)
    began = time.perf_counter()
    for i, frame in enumerate(frames):
        writer.log_rows(
            request_ids=[f"{i}-{j}" for j in range(batch)],
            rows=[1] * batch,
            latencies_ms=[1.0] * batch,
            version="1",
            inputs=frame,
            outputs=outputs,
            layout=("1", "ab"),  # as the endpoint names its frames' layout
        )
    logged = time.perf_counter()
    writer.flush()
    flushed = time.perf_counter()
    writer.close()
    return (logged - began) * 1e6 / requests, (flushed - logged) * 1e6 / requests


def version_of(url: str) -> str:
    with urllib.request.urlopen(f"{url}/version", timeout=5) as response:
        return str(json.loads(response.read())["version"])


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4, help="rounds per level, servers in turn")
    parser.add_argument(
        "--aa",
        action="store_true",
        help="A/A check of the harness: the 'log on' endpoint runs with the log off too",
    )
    options = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    settings = resolve_settings(folder, flags={"home": str(folder / ".mlops")}, env={})
    register_two_versions(settings, "logged")
    register_two_versions(settings, "unlogged")
    location = mlflow_client(settings.tracking_uri).get_model_version_download_uri("logged", "1")
    body = split_body([TELLING_ROW]).encode()

    stock, stock_url = start_stock(location.removeprefix("file://"), options.workers)
    logged = serve(settings, "logged@prod", workers=options.workers,
                   log_sample=0.0 if options.aa else 1.0)  # fmt: skip
    unlogged = serve(settings, "unlogged@prod", workers=options.workers, log_sample=0.0)
    targets = {"stock MLflow": stock_url, "ours, log on": logged.url, "ours, log off": unlogged.url}
    pids = {"stock MLflow": stock.pid, "ours, log on": logged.pid, "ours, log off": unlogged.pid}
    results: dict[tuple[str, int], Any] = {}
    cpu_ms: dict[tuple[str, int], float] = {}  # server CPU per answered request: load-proof
    client_cpu: dict[tuple[str, int], float] = {}  # the load generator's CPU, share of wall
    paired: dict[int, float] = {}  # median over rounds of log on / log off throughput, - 1
    try:
        # Warm up: the first requests load lazy imports; the log is flushed at least once.
        warm = {name: load(url, body, clients=2, seconds=3.0) for name, url in targets.items()}
        # Each level is split into ROUNDS rounds, the three servers in turn in a rotated order,
        # so load from other work on the machine falls on all three alike.
        for clients in CLIENTS:
            tallies: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            used = dict.fromkeys(targets, 0.0)
            order = list(targets)
            for round_ in range(options.rounds):
                for name in order[round_ % 3 :] + order[: round_ % 3]:
                    before = cpu_seconds(pids[name])
                    tally = run_clients(
                        targets[name], body, clients, options.seconds / options.rounds, JSON
                    )
                    used[name] += cpu_seconds(pids[name]) - before
                    tallies[name].append(tally)
            for name, url in targets.items():
                result = bench_result(url, clients, tallies[name])
                results[name, clients] = result
                cpu_ms[name, clients] = used[name] * 1000 / max(1, result.requests)
                client_cpu[name, clients] = (
                    sum(t["cpu_seconds"] for t in tallies[name]) / result.seconds
                )
            # Each round's two of ours ran seconds apart: their ratio is less moved by other
            # work on the machine than the totals, which a busy spell in one round can tilt.
            rates = {name: [sum(t["statuses"].values()) / t["seconds"] for t in tallies[name]]
                     for name in ("ours, log on", "ours, log off")}  # fmt: skip
            pairs = zip(rates["ours, log on"], rates["ours, log off"], strict=True)
            paired[clients] = statistics.median(a / b for a, b in pairs) - 1

        outcome: dict[str, Any] = {}
        runner = threading.Thread(
            target=lambda: outcome.setdefault(
                "load", load(logged.url, body, clients=32, seconds=max(8.0, options.seconds))
            )
        )
        runner.start()
        time.sleep(2.0)
        move_alias(settings, "logged", "prod", 2)
        switch_seconds = wait_until(lambda: version_of(logged.url) == "2", 30, "switch")
        runner.join()
        switch = outcome["load"]
    finally:
        stop(settings, logged.name)
        stop(settings, unlogged.name)
        stock.terminate()
        stock.wait(timeout=30)

    from jupyter_mlops.serving.traffic import read_traffic

    log_rows = len(read_traffic(settings, "logged", "prod"))
    sent = sum(results["ours, log on", c].requests for c in CLIENTS) + switch.requests
    sent += warm["ours, log on"].requests
    print(f"\nsingle-row requests, {options.seconds:.0f} s per level in {options.rounds} rounds, "
          f"{options.workers} worker(s), {os.cpu_count()} CPUs"
          f"{' (A/A: the log is off on both of ours)' if options.aa else ''}\n")  # fmt: skip
    header = (
        f"{'server':<15}{'clients':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'CPU ms/req':>12}{'client CPU':>12}"
    )
    print(header)
    print("-" * len(header))
    for clients in CLIENTS:
        for name in targets:
            r = results[name, clients]
            print(f"{name:<15}{clients:>8}{r.throughput:>9.0f}{ms(r.p50_ms):>9}"
                  f"{ms(r.p99_ms):>9}{r.errors:>8}{cpu_ms[name, clients]:>12.2f}"
                  f"{client_cpu[name, clients]:>12.0%}")  # fmt: skip
    print("\nratios (ours with the log on / stock; the log's cost: on / off)")
    for clients in CLIENTS:
        stock_r, on, off = (results[n, clients] for n in targets)
        stock_cpu, on_cpu, off_cpu = (cpu_ms[n, clients] for n in targets)
        print(
            f"  {clients:>2} clients: throughput {on.throughput / stock_r.throughput:.2f}, "
            f"p99 {on.p99_ms / stock_r.p99_ms:.2f}, CPU/req {on_cpu / stock_cpu:.2f}; "
            f"log: throughput {on.throughput / off.throughput - 1:+.1%} (median of rounds "
            f"{paired[clients]:+.1%}), CPU/req {on_cpu / off_cpu - 1:+.1%}"
        )
    top = max(CLIENTS)
    on = results["ours, log on", top]
    worst = min(results["ours, log on", c].throughput / results["ours, log off", c].throughput
                for c in CLIENTS) - 1  # fmt: skip
    faster = all(
        results["ours, log on", c].throughput >= results["stock MLflow", c].throughput
        for c in CLIENTS
    )
    print(
        f"\ntargets: p99 at {top} clients < 100 ms: {on.p99_ms:.1f} ms "
        f"({'met' if on.p99_ms < 100 else 'NOT met'}); throughput >= stock at every level: "
        f"{'met' if faster else 'NOT met'}; the log costs <= 5% of throughput: worst "
        f"{worst:+.1%} ({'met' if worst >= -0.05 else 'NOT met'}; median of rounds: worst "
        f"{min(paired.values()):+.1%})"
    )
    print(
        f"\nalias switch under 32 clients: {switch.requests} requests, {switch.errors} failed, "
        f"answered by {dict(sorted(switch.versions.items()))}, /version said 2 after "
        f"{switch_seconds:.2f} s"
    )
    print(f"inference log: {log_rows} rows for {sent} requests sent to the logged endpoint")
    print("inference log cost per request, measured directly (request path + flush thread):")
    for batch, clients in ((1, 1), (32, 32)):
        request_path_us, flush_us = log_cost_us(folder / "cost", batch=batch)
        served_us = 1000 * cpu_ms["ours, log off", clients]
        print(
            f"  micro-batches of {batch:>2}: {request_path_us:.1f} + {flush_us:.1f} us = "
            f"{(request_path_us + flush_us) / served_us:.1%} of the {served_us / 1000:.2f} ms of "
            f"CPU a request costs with the log off at {clients} client(s)"
        )


if __name__ == "__main__":
    main()
