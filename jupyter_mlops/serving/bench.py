"""``%serve bench``: a closed-loop load generator over keep-alive HTTP connections.

Each client holds one connection and sends the same payload again as soon as the answer arrives,
for ``seconds``; latencies are measured per request on the client side. A response counts as an
error when its status is not 200 or the connection failed. The clients run in a child process
(:mod:`.loadgen`, one asyncio loop over raw streams), so they never share a GIL with the caller
and cost little CPU next to the server they load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .. import records
from ..config import Settings
from ..errors import MLOpsError, MLOpsUsageError
from .deployments import find_record, percentile
from .results import BenchResult

LOADGEN = Path(__file__).with_name("loadgen.py")


def run_clients(
    url: str, payload: bytes, clients: int, seconds: float, content_type: str
) -> dict[str, Any]:
    """The load generator's raw tally: ``seconds``, ``latencies_ms`` (every request),
    ``statuses``, ``versions`` and ``cpu_seconds`` (its own CPU)."""
    if clients < 1 or seconds <= 0:
        raise MLOpsUsageError("--clients must be 1 or more and --seconds above 0")
    command = [sys.executable, "-I", str(LOADGEN), url, str(clients), str(seconds)]
    command += [content_type, records.HEADER_MODEL_VERSION]
    try:
        done = subprocess.run(
            command, input=payload, capture_output=True, timeout=seconds + 120, check=True
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
        raise MLOpsError(
            f"the load generator failed ({' '.join(detail) or exc}); check that {url} answers"
        ) from None
    tally: dict[str, Any] = json.loads(done.stdout)
    tally["statuses"] = {int(k): v for k, v in tally["statuses"].items()}
    return tally


def bench_result(
    url: str, clients: int, tallies: list[dict[str, Any]], name: str = ""
) -> BenchResult:
    """One :class:`BenchResult` of one or more tallies of the same load."""
    latencies = [v for t in tallies for v in t["latencies_ms"]]
    statuses: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    for tally in tallies:
        statuses.update(tally["statuses"])
        versions.update(tally["versions"])
    elapsed = max(sum(float(t["seconds"]) for t in tallies), 1e-9)
    return BenchResult(
        name=name or url,
        url=url,
        clients=clients,
        seconds=elapsed,
        requests=sum(statuses.values()),
        errors=sum(n for s, n in statuses.items() if s != 200),
        throughput=statuses.get(200, 0) / elapsed,
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        versions=dict(versions),
        statuses=dict(statuses),
    )


def load(
    url: str,
    payload: bytes,
    *,
    clients: int = 32,
    seconds: float = 20.0,
    content_type: str = "application/json",
    name: str = "",
) -> BenchResult:
    """Send ``payload`` to ``{url}/invocations`` from ``clients`` closed-loop clients for
    ``seconds`` (one asyncio process of its own: :mod:`.loadgen`)."""
    tally = run_clients(url, payload, clients, seconds, content_type)
    result: BenchResult = bench_result(url, clients, [tally], name)
    return result


def example_payload(settings: Settings, model: str, alias: str) -> bytes:
    """One row to send: the version's input example, else the newest logged request's inputs."""
    import mlflow.models

    from ..tracking.client import mlflow_client
    from .follow import alias_version
    from .traffic import input_columns, read_traffic

    version = alias_version(settings.tracking_uri, model, alias)
    if version is not None:
        location = mlflow_client(settings.tracking_uri).get_model_version_download_uri(
            model, version
        )
        try:
            example = mlflow.models.Model.load(location).load_input_example(location)
        except Exception:  # no example, or one MLflow cannot read back: try the log
            example = None
        if example is not None:
            import pandas as pd

            frame = pd.DataFrame(example).head(1)
            return split_payload(frame)
    logged = read_traffic(settings, model, alias)
    logged = logged[logged[records.TRAFFIC_STATUS] == 200]
    if not logged.empty:
        return split_payload(logged[input_columns(logged)].tail(1))
    raise MLOpsUsageError(
        f"{model}@{alias} has no input example and no logged request to replay; "
        "register it with --input-example, or send it one request first"
    )


def split_payload(frame: Any) -> bytes:
    """MLflow's ``dataframe_split`` JSON of a frame."""
    return json.dumps(
        {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
    ).encode()


def bench(
    settings: Settings, name: str, *, clients: int = 32, seconds: float = 20.0
) -> BenchResult:
    """Load the endpoint ``name`` with its model's example row (``%serve bench``)."""
    record, _ = find_record(settings, name)
    payload = example_payload(settings, record.model, record.alias)
    return load(record.url, payload, clients=clients, seconds=seconds, name=record.name)
