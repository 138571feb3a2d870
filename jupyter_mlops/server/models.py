"""Typed JSON payloads of the REST API."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from ..config import Settings

if TYPE_CHECKING:
    from ..serving.deployments import DeploymentStatus


@dataclass(frozen=True)
class StoreInfo:
    """``GET store``: the store the kernel of a notebook in this folder resolves."""

    home: str
    home_exists: bool
    tracking_uri: str
    snapshot_store: str
    experiment: str
    notebook: str | None
    sources: dict[str, str]
    version: str

    @classmethod
    def from_settings(cls, settings: Settings, notebook: str | None, version: str) -> StoreInfo:
        return cls(
            home=str(settings.home),
            home_exists=settings.home_exists,
            tracking_uri=settings.tracking_uri,
            snapshot_store=settings.snapshot_store,
            experiment=settings.experiment,
            notebook=notebook,
            sources=dict(settings.sources),
            version=version,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _json(value: Any) -> Any:
    return asdict(value)


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs table."""

    run_id: str
    name: str
    status: str
    start_time: int | None  # ms since the epoch
    end_time: int | None
    params: dict[str, str]
    metrics: dict[str, float | None]


@dataclass(frozen=True)
class RunsPage:
    """``GET runs``: one page of an experiment's runs, newest first unless sorted."""

    experiment: str
    runs: list[RunSummary]
    next_page_token: str | None
    metric_keys: list[str]
    param_keys: list[str]

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class Curve:
    steps: list[int]
    values: list[float | None]


@dataclass(frozen=True)
class CompareRun:
    run_id: str
    label: str  # its name, with an id prefix where names repeat (as %compare labels it)


@dataclass(frozen=True)
class ComparePayload:
    """``GET compare?run=ID&run=ID``: ``%compare``'s Comparison, every map keyed by run id."""

    runs: list[CompareRun]  # in the order asked
    params: dict[str, dict[str, Any]]  # param -> run id -> value (None: not logged)
    metrics: dict[str, dict[str, float | None]]  # metric -> run id -> last value
    param_differs: dict[str, bool]
    metric_differs: dict[str, bool]
    curves: dict[str, dict[str, Curve]]  # metric -> run id -> curve

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class RunDetail:
    """``GET runs/<id>``: everything the run recorded, with its metric curves (thinned)."""

    run: RunSummary
    experiment: str
    tags: dict[str, str]
    inputs: list[str]  # snapshot refs the run saved or loaded
    artifacts: list[str]
    cell_source: str | None
    notebook: str | None
    cell_id: str | None
    curves: dict[str, Curve]

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class SnapshotVersion:
    version: int
    ref: str
    id: str
    kind: str
    rows: int | None
    columns: int | None
    bytes: int
    created: str | None
    message: str
    notebook: str
    error: str | None = None  # what is wrong with a damaged version file or manifest


@dataclass(frozen=True)
class SnapshotName:
    name: str
    versions: list[SnapshotVersion]


@dataclass(frozen=True)
class SnapshotList:
    """``GET snapshots``: every name with its versions, newest version last."""

    names: list[SnapshotName]

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str
    index: bool
    bytes: int
    stats: dict[str, Any]


@dataclass(frozen=True)
class DiffPayload:
    a: str
    b: str
    identical: bool
    rows: str | None
    changes: list[dict[str, Any]]  # column, change, detail
    stat_shifts: list[dict[str, Any]]  # column, stat, before, after
    unchanged: int
    text: str


@dataclass(frozen=True)
class SnapshotDetail:
    """``GET snapshots/<name>``: the versions, one version's schema and stats, optionally a diff."""

    name: str
    versions: list[SnapshotVersion]
    version: int
    schema: list[ColumnInfo]
    diff: DiffPayload | None

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class ModelSummary:
    name: str
    latest_version: int | None
    versions: int
    aliases: dict[str, int]
    error: str | None = None  # why this model could not be read; the rest of the list stands


@dataclass(frozen=True)
class ModelList:
    """``GET models``: registered models with their aliases."""

    models: list[ModelSummary]

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class ModelVersionInfo:
    version: int
    run_id: str | None
    run_name: str | None
    created: int | None  # ms since the epoch
    aliases: list[str]
    snapshots: list[str]
    metrics: dict[str, float | None]
    gates: list[dict[str, Any]]  # every recorded decision, newest first (GateResult.record())


@dataclass(frozen=True)
class ModelDetail:
    """``GET models/<name>``: versions (newest first), aliases and gate history."""

    name: str
    aliases: dict[str, int]
    versions: list[ModelVersionInfo]

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class PromoteRequest:
    """``POST models/<name>/promote`` body: the same options as ``%promote``."""

    alias: str
    version: int | None = None
    require: tuple[str, ...] = ()
    vs: str | None = None
    min_delta: float | None = None
    metric: str | None = None
    reference: str | None = None
    current: str | None = None
    max_drift_share: float | None = None
    dry_run: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class PromoteAnswer:
    """The gate's verdict; a failed gate is an answer (200), not an error."""

    passed: bool
    moved: bool
    decision: str
    headline: str
    model: str
    version: int | None
    alias: str | None
    previous: int | None
    checks: list[dict[str, Any]]  # name, value, threshold, passed, detail
    reports: list[str]

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class DriftReportInfo:
    run_id: str
    run_name: str
    report: str  # file stem under the run's drift/ artifacts
    reference: str | None
    current: str | None
    drifted: bool | None
    share_drifted: float | None
    start_time: int | None
    error: str | None = None  # why this report's summary could not be read


@dataclass(frozen=True)
class DriftList:
    """``GET drift``: drift reports logged to the experiment's runs, newest run first."""

    experiment: str
    reports: list[DriftReportInfo]

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class DriftReport:
    """``GET drift/<run_id>/<report>``: the standalone HTML of one report."""

    run_id: str
    report: str
    html: str

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class DeploymentInfo:
    """One endpoint of the store, as ``%serve status`` shows it (latencies in milliseconds)."""

    name: str  # NAME@ALIAS
    model: str
    alias: str
    version: str | None  # the version answering now (None until a worker reported)
    url: str
    pid: int
    detached: bool
    started: float  # epoch seconds
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    alive: bool
    workers: int

    @classmethod
    def of(cls, status: DeploymentStatus) -> DeploymentInfo:
        """The payload's fields of an endpoint's status (host, port, dropped stay out)."""
        return cls(**{f.name: getattr(status, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class DeploymentList:
    """``GET deployments`` (and the answer of ``POST deployments/<name>/stop``), oldest first."""

    deployments: list[DeploymentInfo]

    def to_json(self) -> dict[str, Any]:
        return _json(self)
