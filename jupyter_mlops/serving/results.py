"""Result objects of serving: a started ``Deployment``, the ``ServingStatus`` table, a
``BenchResult`` and a ``KServeExport``. Text forms here; HTML in ``display/serving.py``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from .deployments import DeploymentStatus


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


@dataclass(frozen=True)
class Deployment:
    """An endpoint ``%serve NAME@ALIAS`` started.

    ``url`` takes MLflow's scoring protocol (``POST {url}/invocations``); ``version`` is the one
    answering when it started (it follows the alias afterwards: see ``GET {url}/version``);
    ``pid`` leads its process group. ``detached`` endpoints outlive the kernel.
    """

    name: str
    model: str
    alias: str
    version: str
    url: str
    pid: int
    host: str
    port: int
    detached: bool = False
    workers: int = 1
    log_sample: float = 1.0
    enforce_contract: str | None = None

    @property
    def invocations_url(self) -> str:
        return f"{self.url}/invocations"

    def __repr__(self) -> str:
        life = "detached: stop with %serve stop" if self.detached else "stops with this kernel"
        lines = [
            f"endpoint {self.name} serving version {self.version} at {self.url} "
            f"(pid {self.pid}, {life})",
            f"  curl -X POST {self.invocations_url} -H 'Content-Type: application/json' "
            """-d '{"dataframe_split": {"columns": [...], "data": [[...]]}}'""",
        ]
        if self.log_sample < 1.0:
            lines.append(f"  logging {self.log_sample:.0%} of requests")
        if self.enforce_contract:
            lines.append(f"  refusing requests that break contract {self.enforce_contract!r}")
        return "\n".join(lines)


STATUS_COLUMNS = ("name", "version", "url", "requests", "errors", "p50", "p95", "p99", "alive")


@dataclass(frozen=True)
class ServingStatus:
    """Every endpoint of the store (``%serve status``)."""

    deployments: tuple[DeploymentStatus, ...] = ()

    def rows(self) -> list[tuple[str, ...]]:
        return [
            (
                d.name,
                d.version or "-",
                d.url,
                str(d.requests),
                str(d.errors),
                _ms(d.p50_ms),
                _ms(d.p95_ms),
                _ms(d.p99_ms),
                "yes" if d.alive else "NO",
            )
            for d in self.deployments
        ]

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([d.to_dict() for d in self.deployments])

    def __repr__(self) -> str:
        if not self.deployments:
            return "no endpoints; start one with %serve NAME@ALIAS"
        rows = [STATUS_COLUMNS, *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(STATUS_COLUMNS))]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows
        )


@dataclass(frozen=True)
class BenchResult:
    """What ``%serve bench`` measured: closed-loop clients sending one payload for a while."""

    name: str
    url: str
    clients: int
    seconds: float
    requests: int
    errors: int
    throughput: float  # answered requests per second
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    versions: dict[str, int] = field(default_factory=dict)  # requests answered per version
    statuses: dict[int, int] = field(default_factory=dict)

    def __repr__(self) -> str:
        versions = ", ".join(f"v{v}: {n}" for v, n in sorted(self.versions.items()))
        return (
            f"bench {self.name}: {self.clients} clients for {self.seconds:.1f} s: "
            f"{self.requests} requests, {self.errors} errors, {self.throughput:.0f} req/s, "
            f"p50 {_ms(self.p50_ms)} ms, p95 {_ms(self.p95_ms)} ms, p99 {_ms(self.p99_ms)} ms"
            + (f" ({versions})" if versions else "")
        )


@dataclass(frozen=True)
class KServeExport:
    """A KServe ``InferenceService`` manifest written for one exact model version."""

    path: str
    model: str
    version: str
    storage_uri: str
    manifest: dict[str, Any]
    local_storage: bool  # the artifacts are on this machine: copy them where the cluster reads

    def __repr__(self) -> str:
        lines = [
            f"KServe InferenceService for {self.model} version {self.version}: {self.path}",
            f"  storageUri: {self.storage_uri}",
            f"  apply with: kubectl apply -f {self.path}",
        ]
        if self.local_storage:
            lines.append(
                "  the artifacts are local: copy that folder to a bucket the cluster reads "
                "(s3://, gs://, pvc://) and set storageUri"
            )
        return "\n".join(lines)


def started_text(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
