"""``%serve bench``: a closed-loop load generator over keep-alive HTTP connections.

Each client thread holds one connection and sends the same payload again as soon as the answer
arrives, for ``seconds``; latencies are measured per request on the client side. A response
counts as an error when its status is not 200 or the connection failed.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .. import records
from ..config import Settings
from ..errors import MLOpsUsageError
from .deployments import find_record, percentile
from .results import BenchResult


@dataclass
class ClientTally:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)


def _client(
    url: str, body: bytes, content_type: str, until: float, tally: ClientTally, start: Any
) -> None:
    parts = urllib.parse.urlsplit(url)
    connection: http.client.HTTPConnection | None = None
    headers = {"Content-Type": content_type}
    start.wait()
    while time.monotonic() < until:
        began = time.perf_counter()
        try:
            if connection is None:
                connection = http.client.HTTPConnection(
                    parts.hostname or "", parts.port, timeout=30
                )
            connection.request("POST", f"{parts.path}/invocations", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
            version = response.getheader(records.HEADER_MODEL_VERSION)
        except (OSError, http.client.HTTPException):
            status, version = 0, None
            if connection is not None:
                connection.close()
            connection = None
        tally.latencies_ms.append((time.perf_counter() - began) * 1000.0)
        tally.statuses[status] += 1
        if version:
            tally.versions[version] += 1
    if connection is not None:
        connection.close()


def load(
    url: str,
    payload: bytes,
    *,
    clients: int = 32,
    seconds: float = 20.0,
    content_type: str = "application/json",
    name: str = "",
) -> BenchResult:
    """Send ``payload`` to ``{url}/invocations`` from ``clients`` threads for ``seconds``."""
    if clients < 1 or seconds <= 0:
        raise MLOpsUsageError("--clients must be 1 or more and --seconds above 0")
    tallies = [ClientTally() for _ in range(clients)]
    start = threading.Event()
    began = time.monotonic()
    until = began + seconds
    threads = [
        threading.Thread(
            target=_client, args=(url, payload, content_type, until, tally, start), daemon=True
        )
        for tally in tallies
    ]
    for thread in threads:
        thread.start()
    start.set()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    elapsed = max(time.monotonic() - began, 1e-9)
    latencies = [v for t in tallies for v in t.latencies_ms]
    statuses: Counter[int] = sum((t.statuses for t in tallies), Counter())
    versions: Counter[str] = sum((t.versions for t in tallies), Counter())
    ok = statuses.get(200, 0)
    return BenchResult(
        name=name or url,
        url=url,
        clients=clients,
        seconds=elapsed,
        requests=sum(statuses.values()),
        errors=sum(n for s, n in statuses.items() if s != 200),
        throughput=ok / elapsed,
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        versions=dict(versions),
        statuses=dict(statuses),
    )


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
