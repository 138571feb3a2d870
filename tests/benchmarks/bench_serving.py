"""``%serve`` vs stock MLflow serving of the same model, single-row requests, same client load.

Stock is MLflow's own FastAPI scoring app (``mlflow.pyfunc.scoring_server.app``) under uvicorn,
as ``mlflow models serve --env-manager local`` runs it; ours is ``%serve NAME@ALIAS``, four
endpoints of it: two with the inference log on (every request), two with it off
(``--log-sample 0``). All five run at once and are loaded in turn by the same closed-loop
clients (``jupyter_mlops.serving.loadgen``: keep-alive connections, every client on one asyncio
loop in a process of its own, kept for the whole run, whose CPU share is printed as "client
CPU"). Then the alias is moved under 32 clients: failed requests and the time until
``/version`` says so.

The log's cost is a paired statistic the machine's other work cannot fake: each level is cut
into many short rounds; in each round every server is loaded once, in an order that rotates and
reverses from round to round (no server is always first or last), and the round gives the
throughput of the logged endpoints over the unlogged ones, measured within a second or two.
Printed: the median over the rounds with a bootstrap 95% interval; the target counts as "met"
only when the whole interval is above -5%. Two endpoints each way, because two identical
processes differ by a few percent for good (memory layout: the process lottery); the A/A line
puts one logged and one unlogged endpoint on each side, so the log cancels and what it shows is
the noise and the lottery, next to the cost. The servers are pinned to one CPU and the clients
to another (``--no-pin`` leaves them to the scheduler), and share one string-hash seed. A spare
endpoint of ours is started first and never measured: the first one started ran 5-14% slower
than its twin for the whole run, whichever it was, on a machine under contention.

    python tests/benchmarks/bench_serving.py                 # 8 s per server and level
    python tests/benchmarks/bench_serving.py --seconds 16 --rounds 80
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
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

from jupyter_mlops import records  # noqa: E402
from jupyter_mlops.config import resolve_settings  # noqa: E402
from jupyter_mlops.serving.bench import LOADGEN, bench_result, load  # noqa: E402
from jupyter_mlops.serving.launch import serve, stop  # noqa: E402
from jupyter_mlops.tracking.client import mlflow_client  # noqa: E402
from tests.bench_stats import median_interval, verdict  # noqa: E402
from tests.serving_support import (  # noqa: E402
    TELLING_ROW,
    move_alias,
    register_two_versions,
    split_body,
    wait_until,
)

CLIENTS = (1, 8, 32)
JSON = "application/json"
STOCK = "stock MLflow"
ON = ("ours, log on 1", "ours, log on 2")  # two endpoints each way: see "the process lottery"
OFF = ("ours, log off 1", "ours, log off 2")
MODELS = {ON[0]: "logged", ON[1]: "logged2", OFF[0]: "unlogged", OFF[1]: "unlogged2"}
TARGET = -0.05  # the log may cost at most 5% of throughput

# The clients' process, kept for the whole run: one JSON line in (url, clients, seconds), the
# load generator's tally out (its run() as `python loadgen.py` runs it once).
CLIENT_LOOP = """
import asyncio, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("loadgen", sys.argv[1])
loadgen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(loadgen)
body = bytes.fromhex(sys.argv[2])
for line in sys.stdin:
    url, clients, seconds = json.loads(line)
    tally = asyncio.run(loadgen.run(url, body, clients, seconds, sys.argv[3], sys.argv[4]))
    sys.stdout.write(json.dumps(tally) + "\\n")
    sys.stdout.flush()
"""


class Clients:
    """The closed-loop clients, one process for every round (no start-up cost per round)."""

    def __init__(self, body: bytes, cpu: int | None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", CLIENT_LOOP, str(LOADGEN), body.hex(), JSON,
             records.HEADER_MODEL_VERSION],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        if cpu is not None:
            os.sched_setaffinity(self.process.pid, {cpu})
        self.cpu = 0.0

    def run(self, url: str, clients: int, seconds: float) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps([url, clients, seconds]) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the clients' process died loading {url}")
        tally: dict[str, Any] = json.loads(line)
        tally["statuses"] = {int(k): v for k, v in tally["statuses"].items()}
        total = tally["cpu_seconds"]  # the process's CPU so far: this round's is the difference
        tally["cpu_seconds"], self.cpu = total - self.cpu, total
        return tally

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


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


def server_processes(pid: int) -> list[Any]:
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def pin(pid: int, cpu: int) -> None:
    """Every thread of a server and its worker processes onto one CPU (threads started later
    inherit it from the thread that starts them)."""
    for process in server_processes(pid):
        for thread in process.threads():
            os.sched_setaffinity(thread.id, {cpu})


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a server and its worker processes so far."""
    total = 0.0
    for process in server_processes(pid):
        times = process.cpu_times()
        total += times.user + times.system
    return total


def round_order(names: list[str], round_: int) -> list[str]:
    """Round ``round_``'s order: rotated by one each round, reversed every other cycle."""
    turn = round_ % len(names)
    order = names[turn:] + names[:turn]
    return order[::-1] if (round_ // len(names)) % 2 else order


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


def interval(values: list[float]) -> str:
    middle, low, high = median_interval(values)
    return f"{middle:+.1%} [{low:+.1%}, {high:+.1%}]"


def geometric(
    rates: dict[str, list[float]], up: tuple[str, str], down: tuple[str, str]
) -> list[float]:
    """Per round: the geometric mean of ``up``'s throughputs over that of ``down``'s, - 1."""
    rounds = zip(*(rates[name] for name in (*up, *down)), strict=True)
    return [math.sqrt(a * b / (c * d)) - 1 if c * d else -1.0 for a, b, c, d in rounds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="per server and level")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=40, help="rounds per level")
    parser.add_argument("--no-pin", action="store_true", help="leave CPUs to the scheduler")
    options = parser.parse_args()
    pinned = not options.no_pin and len(os.sched_getaffinity(0)) >= 2
    server_cpu, client_cpu_id = sorted(os.sched_getaffinity(0))[:2] if pinned else (None, None)

    folder = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    settings = resolve_settings(folder, flags={"home": str(folder / ".mlops")}, env={})
    for model in (*MODELS.values(), "spare"):
        register_two_versions(settings, model)
    location = mlflow_client(settings.tracking_uri).get_model_version_download_uri("logged", "1")
    body = split_body([TELLING_ROW]).encode()

    # Every server hashes strings alike (dict layouts, hence speed, vary with the seed).
    os.environ["PYTHONHASHSEED"] = "0"
    # The first endpoint started ran 5-14% slower than its twin for the whole run, whichever of
    # ours it was (log on or off), on a machine under contention: one that is not measured.
    spare = serve(settings, "spare@prod", workers=options.workers, log_sample=0.0)
    ours = {
        name: serve(settings, f"{model}@prod", workers=options.workers,
                    log_sample=1.0 if name in ON else 0.0)
        for name, model in MODELS.items()
    }  # fmt: skip
    try:
        stock, stock_url = start_stock(location.removeprefix("file://"), options.workers)
    except BaseException:
        for deployment in (spare, *ours.values()):
            stop(settings, deployment.name)
        raise
    targets = {STOCK: stock_url, **{name: d.url for name, d in ours.items()}}
    pids = {STOCK: stock.pid, **{name: d.pid for name, d in ours.items()}}
    clients_ = Clients(body, client_cpu_id)
    results: dict[tuple[str, int], Any] = {}
    cpu_ms: dict[tuple[str, int], float] = {}  # server CPU per answered request: load-proof
    client_cpu: dict[tuple[str, int], float] = {}  # the load generator's CPU, share of wall
    paired: dict[tuple[str, int], list[float]] = {}  # per round ratios, - 1 (see below)
    began, load_before = time.perf_counter(), os.getloadavg()[0]
    try:
        # Warm up: the first requests load lazy imports; the log is flushed at least once.
        warm = {name: clients_.run(url, 2, 3.0) for name, url in targets.items()}
        if server_cpu is not None:
            for pid in pids.values():
                pin(pid, server_cpu)
        round_seconds = options.seconds / options.rounds
        for clients in CLIENTS:
            tallies: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            # A server's CPU over the whole level, idle spells too: a logged endpoint's flush
            # thread may write during another server's round, and counts here all the same.
            used = {name: cpu_seconds(pid) for name, pid in pids.items()}
            for round_ in range(options.rounds):
                for name in round_order(list(targets), round_):
                    tallies[name].append(clients_.run(targets[name], clients, round_seconds))
            used = {name: cpu_seconds(pid) - used[name] for name, pid in pids.items()}
            for name, url in targets.items():
                result = bench_result(url, clients, tallies[name])
                results[name, clients] = result
                cpu_ms[name, clients] = used[name] * 1000 / max(1, result.requests)
                client_cpu[name, clients] = (
                    sum(t["cpu_seconds"] for t in tallies[name]) / result.seconds
                )
            for name in ours:
                paired[name, clients] = [
                    t["statuses"].get(200, 0) / t["seconds"] for t in tallies[name]
                ]
        measured = time.perf_counter() - began

        outcome: dict[str, Any] = {}
        switched = ours[ON[0]].url
        runner = threading.Thread(
            target=lambda: outcome.setdefault(
                "load", load(switched, body, clients=32, seconds=max(8.0, options.seconds))
            )
        )
        runner.start()
        time.sleep(2.0)
        move_alias(settings, MODELS[ON[0]], "prod", 2)
        switch_seconds = wait_until(lambda: version_of(switched) == "2", 30, "switch")
        runner.join()
        switch = outcome["load"]
    finally:
        clients_.close()
        for deployment in (spare, *ours.values()):
            stop(settings, deployment.name)
        stock.terminate()
        stock.wait(timeout=30)

    from jupyter_mlops.serving.traffic import read_traffic

    logged = {
        name: (
            len(read_traffic(settings, MODELS[name], "prod")),
            sum(results[name, c].requests for c in CLIENTS)
            + sum(warm[name]["statuses"].values())
            + (switch.requests if name == ON[0] else 0),
        )
        for name in ON
    }
    load_average = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    placed = f"servers on CPU {server_cpu}, clients on CPU {client_cpu_id}"
    placed = placed if pinned else "not pinned"
    print(f"\nsingle-row requests, {options.seconds:g} s per server and level in "
          f"{options.rounds} rounds of {options.seconds / options.rounds:.2f} s, "
          f"{options.workers} worker(s), {os.cpu_count()} CPUs, {placed}, {measured:.0f} s, "
          f"load average {load_before:.1f} before, now {load_average}\n")  # fmt: skip
    header = (
        f"{'server':<17}{'clients':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'CPU ms/req':>12}{'client CPU':>12}"
    )
    print(header)
    print("-" * len(header))
    for clients in CLIENTS:
        for name in targets:
            r = results[name, clients]
            print(f"{name:<17}{clients:>8}{r.throughput:>9.0f}{ms(r.p50_ms):>9}"
                  f"{ms(r.p99_ms):>9}{r.errors:>8}{cpu_ms[name, clients]:>12.2f}"
                  f"{client_cpu[name, clients]:>12.0%}")  # fmt: skip
    print("\nratios, ours with the log on (the worse of the two) / stock")
    slower: dict[int, Any] = {}
    for clients in CLIENTS:
        stock_r = results[STOCK, clients]
        on = slower[clients] = min((results[n, clients] for n in ON), key=lambda r: r.throughput)
        on_cpu = max(cpu_ms[n, clients] for n in ON)
        print(
            f"  {clients:>2} clients: throughput {on.throughput / stock_r.throughput:.2f}, "
            f"p99 {on.p99_ms / stock_r.p99_ms:.2f}, CPU/req {on_cpu / cpu_ms[STOCK, clients]:.2f}"
        )
    print(
        f"\nthe log's cost: per round, the two logged endpoints' throughput over the two "
        f"unlogged ones' (geometric means), median over {options.rounds} rounds [bootstrap 95% "
        f"interval]; A/A: the same of {{on 1, off 1}} over {{on 2, off 2}}, where the log "
        f"cancels and what is left is the harness's noise and the process lottery"
    )
    cost: dict[int, tuple[float, float, float]] = {}
    for clients in CLIENTS:
        rates = {name: paired[name, clients] for name in ours}
        cost[clients] = median_interval(geometric(rates, ON, OFF))
        aa = median_interval(geometric(rates, (ON[0], OFF[0]), (ON[1], OFF[1])))
        cpu = {name: cpu_ms[name, clients] for name in ours}
        cpu_cost = math.sqrt(cpu[ON[0]] * cpu[ON[1]] / (cpu[OFF[0]] * cpu[OFF[1]])) - 1
        cpu_aa = math.sqrt(cpu[ON[0]] * cpu[OFF[0]] / (cpu[ON[1]] * cpu[OFF[1]])) - 1
        print(
            f"  {clients:>2} clients: log on / off {interval(cost[clients])}   "
            f"A/A {interval(aa)}   CPU/req on / off {cpu_cost:+.1%}, A/A {cpu_aa:+.1%}"
        )
    top = max(CLIENTS)
    faster = all(slower[c].throughput >= results[STOCK, c].throughput for c in CLIENTS)
    worst = min(middle for middle, _, _ in cost.values())
    lowest = min(low for _, low, _ in cost.values())
    settled = [verdict(low, high, TARGET) for _, low, high in cost.values()]
    overall = next((v for v in ("NOT met", "not settled") if v in settled), "met")
    p99 = slower[top].p99_ms
    print(
        f"\ntargets: p99 at {top} clients < 100 ms: {p99:.1f} ms "
        f"({'met' if p99 < 100 else 'NOT met'}); throughput >= stock at every level: "
        f"{'met' if faster else 'NOT met'}; the log costs <= 5% of throughput: worst median "
        f"{worst:+.1%}, lowest interval bound {lowest:+.1%} ({overall})"
    )
    print(
        f"\nalias switch under 32 clients: {switch.requests} requests, {switch.errors} failed, "
        f"answered by {dict(sorted(switch.versions.items()))}, /version said 2 after "
        f"{switch_seconds:.2f} s"
    )
    for name, (rows, sent) in logged.items():
        print(f"inference log of {name}: {rows} rows for {sent} requests sent")
    print("inference log cost per request, measured directly (request path + flush thread):")
    for batch, clients in ((1, 1), (32, 32)):
        request_path_us, flush_us = log_cost_us(folder / "cost", batch=batch)
        served_us = 1000 * min(cpu_ms[name, clients] for name in OFF)
        print(
            f"  micro-batches of {batch:>2}: {request_path_us:.1f} + {flush_us:.1f} us = "
            f"{(request_path_us + flush_us) / served_us:.1%} of the {served_us / 1000:.2f} ms of "
            f"CPU a request costs with the log off at {clients} client(s)"
        )


if __name__ == "__main__":
    main()
