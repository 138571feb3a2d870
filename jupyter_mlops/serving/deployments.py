"""Where endpoints run: one small record per endpoint in the store, plus live stats files.

``<home>/deployments/<name>/record.json`` is written by ``%serve`` when it starts an endpoint
(model, alias, url, pid, options) and removed when it is stopped; each serving process writes
``stats-<pid>.json`` about once a second (version answering, requests, errors, recent
latencies). Any kernel (or the server extension) of the store reads both with
:func:`list_deployments`, which is how ``%serve status``, ``%serve stop`` from another kernel
and ``GET deployments`` find endpoints.

A deployment's name is ``NAME@ALIAS`` (the reference it serves); commands that take a name also
accept the bare model name when only one endpoint serves that model.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import records
from ..config import Settings
from ..errors import MLOpsNotFound, MLOpsUsageError

LATENCY_WINDOW = 4096  # recent latencies each worker keeps for the percentiles


@dataclass(frozen=True)
class DeploymentRecord:
    """What ``%serve`` started (the JSON record; ``pid`` leads the endpoint's process group)."""

    name: str
    model: str
    alias: str
    host: str
    port: int
    pid: int
    detached: bool
    started: float  # epoch seconds
    workers: int = 1
    log_sample: float = 1.0
    enforce_contract: str | None = None
    owner_pid: int | None = None  # the kernel that started it (None when detached)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class DeploymentStatus:
    """One endpoint as ``%serve status`` and ``GET deployments`` show it.

    ``version`` is the model version answering now (None until a worker reported);
    ``requests``/``errors`` (status >= 400) sum over the endpoint's workers; latencies are
    percentiles of the recent requests in milliseconds (None before the first request).
    """

    name: str
    model: str
    alias: str
    version: str | None
    url: str
    pid: int
    host: str
    port: int
    detached: bool
    started: float
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    alive: bool
    dropped: int = 0  # requests the inference log had no room for
    workers: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WorkerStats:
    """Live counters of one serving process (written to its stats file)."""

    pid: int
    version: str | None = None
    requests: int = 0
    errors: int = 0
    dropped: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    updated: float = 0.0


def deployments_folder(home: Path) -> Path:
    return home / records.DEPLOYMENTS_DIRNAME


def deployment_folder(home: Path, name: str) -> Path:
    return deployments_folder(home) / name


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Atomic JSON write (a reader never sees half a record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    os.replace(partial, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def save_record(home: Path, record: DeploymentRecord) -> Path:
    path = deployment_folder(home, record.name) / records.DEPLOYMENT_RECORD
    write_json(path, asdict(record))
    return path


def load_record(folder: Path) -> DeploymentRecord | None:
    payload = _read_json(folder / records.DEPLOYMENT_RECORD)
    if payload is None:
        return None
    try:
        return DeploymentRecord(**payload)
    except TypeError:  # written by another version of jupyter-mlops: not ours to read
        return None


def write_stats(folder: Path, stats: WorkerStats) -> None:
    payload = asdict(stats)
    payload["latencies_ms"] = stats.latencies_ms[-LATENCY_WINDOW:]
    write_json(folder / f"{records.DEPLOYMENT_STATS_PREFIX}{stats.pid}.json", payload)


def read_stats(folder: Path) -> list[WorkerStats]:
    found = []
    for path in sorted(folder.glob(f"{records.DEPLOYMENT_STATS_PREFIX}*.json")):
        payload = _read_json(path)
        if payload is None:
            continue
        try:
            found.append(WorkerStats(**payload))
        except TypeError:
            continue
    return found


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))
    return ordered[rank]


def record_alive(record: DeploymentRecord, folder: Path) -> bool:
    """The endpoint's process runs, and it is ours (its command line names its folder)."""
    from ..distributed.procs import alive, owned

    return alive(record.pid) and owned(record.pid, str(folder))


def status_of(record: DeploymentRecord, folder: Path) -> DeploymentStatus:
    stats = read_stats(folder)
    latencies = [v for s in stats for v in s.latencies_ms]
    newest = max(stats, key=lambda s: s.updated, default=None)
    return DeploymentStatus(
        name=record.name,
        model=record.model,
        alias=record.alias,
        version=newest.version if newest else None,
        url=record.url,
        pid=record.pid,
        host=record.host,
        port=record.port,
        detached=record.detached,
        started=record.started,
        requests=sum(s.requests for s in stats),
        errors=sum(s.errors for s in stats),
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        alive=record_alive(record, folder),
        dropped=sum(s.dropped for s in stats),
        workers=record.workers,
    )


def list_deployments(settings: Settings) -> list[DeploymentStatus]:
    """Every endpoint recorded in the store, with live stats, oldest first.

    An endpoint whose process died without ``%serve stop`` (killed, machine rebooted) is listed
    with ``alive=False`` until ``%serve stop NAME`` clears its record.
    """
    root = deployments_folder(settings.home)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        record = load_record(folder)
        if record is not None:
            found.append(status_of(record, folder))
    return sorted(found, key=lambda d: d.started)


def find_record(settings: Settings, name: str) -> tuple[DeploymentRecord, Path]:
    """The record ``name`` (``NAME@ALIAS``, or a model name served by one endpoint) names."""
    root = deployments_folder(settings.home)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    known = [(r, f) for f in folders if (r := load_record(f)) is not None]
    exact = [(r, f) for r, f in known if r.name == name]
    if exact:
        return exact[0]
    by_model = [(r, f) for r, f in known if r.model == name]
    if len(by_model) == 1:
        return by_model[0]
    if by_model:
        raise MLOpsUsageError(
            f"{len(by_model)} endpoints serve model {name!r} "
            f"({', '.join(r.name for r, _ in by_model)}); name one as NAME@ALIAS"
        )
    raise MLOpsNotFound(
        f"no endpoint named {name!r}; running: {', '.join(r.name for r, _ in known) or 'none'} "
        "(start one with %serve NAME@ALIAS)"
    )


def uptime(started: float) -> float:
    return max(0.0, time.time() - started)
