"""The Python API: ``import jupyter_mlops as mlops`` mirrors every magic, for scripts and tests."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .context import current_notebook, current_settings
from .diagnostics import DoctorReport, Status
from .diagnostics import doctor as run_doctor

if TYPE_CHECKING:
    import pandas as pd

    from .contracts.results import ContractResult
    from .contracts.skew import SkewResult
    from .contracts.store import Contract
    from .drift.result import DriftResult
    from .lineage.graph import Lineage
    from .lineage.reproduce import Reproduction
    from .monitoring.result import MonitorResult
    from .registry.results import GateResult, ModelVersion
    from .serving.results import Deployment
    from .snapshots.results import GcReport, Snapshot, SnapshotDiff, VerifyReport
    from .snapshots.retention import Removal
    from .tracking.compare import Comparison
    from .tracking.run import TrackedRun


def status() -> Status:
    """Which store, tracking URI, experiment and notebook this process uses, and why."""
    return Status(current_settings(), current_notebook())


def doctor() -> DoctorReport:
    """Check the store, MLflow, the notebook path, torch, GPUs, torchrun and the labextension."""
    return run_doctor(current_settings(), current_notebook())


# --- experiment tracking (jupyter_mlops/tracking) ----------------------------------------------
def track(
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    experiment: str | None = None,
    tags: Mapping[str, str] | None = None,
    policy: str = "auto",
    param_names: Sequence[str] = (),
    source: str | None = None,
    code: str | None = None,
) -> TrackedRun:
    """``with mlops.track("baseline", params={"lr": 0.1}):`` runs the block in an MLflow run."""
    from .display.tracking import attach_view
    from .tracking.run import start

    run = start(
        name,
        experiment=experiment,
        params=params,
        param_names=param_names,
        tags=tags,
        policy=policy,
        source=source,
        code=code,
    )
    try:
        attach_view(run)
    except BaseException as exc:  # e.g. Ctrl-C before the caller could enter the run
        run.end(exc)
        raise
    return run


def log(step: int | None = None, **metrics: Any) -> None:
    """Record metric values in the active tracked run (buffered: microseconds per call)."""
    _tracking_run().log_metrics(step, metrics)


def _tracking_run() -> Any:
    """``jupyter_mlops.tracking.run``, without an import statement's cost on the hot path."""
    module = sys.modules.get("jupyter_mlops.tracking.run")
    if module is None:
        from .tracking import run as module
    return module


def log_params(**params: Any) -> None:
    """Record params in the active tracked run."""
    from .tracking.run import current

    current().log_params(**params)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Copy a file or folder into the active tracked run's artifacts."""
    from .tracking.run import current

    current().log_artifact(path, artifact_path)


def runs(
    experiment: str | None = None,
    filter: str | None = None,
    sort: str | None = None,
    limit: int = 100,
    include_superseded: bool = False,
) -> pd.DataFrame:
    """One row per run of the experiment: run_id, name, status, params.*, metrics.*."""
    from .tracking.query import search

    settings = current_settings({"experiment": experiment})
    return search(settings, filter, sort, limit, include_superseded, experiment is not None)


def compare(*run_ids: str, metric: str | Sequence[str] | None = None) -> Comparison:
    """Params, metrics and metric curves of runs side by side."""
    from .tracking.compare import compare as run_compare

    metrics = [metric] if isinstance(metric, str) else metric
    return run_compare(current_settings(), run_ids, metrics)


def snapshot(
    obj: Any,
    name: str,
    tags: Mapping[str, Any] | None = None,
    message: str | None = None,
    allow_pickle: bool = False,
    allow_violations: bool = False,
    sql: str | None = None,
    db: str | None = None,
) -> Snapshot:
    """Save data as the next version of ``name`` (``%snapshot``): a pandas or polars frame
    (or LazyFrame), an Arrow table or record-batch reader, a Parquet file, folder or URL, a
    file or a folder; or, with ``obj=None``, the result of ``sql`` run on the database ``db``
    (DuckDB). Sources other than a pandas frame are streamed in bounded memory.

    ``allow_pickle`` stores columns Arrow cannot hold (mixed objects, complex, Sparse) as
    opaque pickled cells instead of refusing them. When ``name`` has a data contract
    (``%expect``) the data must satisfy it, else nothing is saved (``ContractViolated``);
    ``allow_violations`` saves it anyway, tagged with what failed.
    """
    from .snapshots import service

    return service.snapshot(
        current_settings(),
        obj,
        name,
        tags=dict(tags) if tags else None,
        message=message,
        allow_pickle=allow_pickle,
        allow_violations=allow_violations,
        sql=sql,
        db=db,
    )


def load(
    ref: str,
    verify: bool = True,
    to: str | Path | None = None,
    allow_pickle: bool = False,
    as_: str = "pandas",
    batches: bool = False,
) -> Any:
    """The DataFrame (or restored path) of a snapshot REF, re-hashed on the way in.

    ``as_``: ``pandas`` (exactly the frame saved), ``arrow`` (a pyarrow Table) or ``polars``.
    ``batches=True`` gives an iterator of pyarrow RecordBatches instead, one per row chunk, each
    cell verified as it is read, in bounded memory. ``allow_pickle`` lets pickled columns be
    unpickled, which runs code the writer chose (off by default, for every store).
    """
    from .snapshots import service

    return service.load(
        current_settings(),
        ref,
        verify=verify,
        to=to,
        allow_pickle=allow_pickle,
        as_=as_,
        batches=batches,
    )


def snapshots(name: str | None = None) -> pd.DataFrame:
    """Every snapshot version (of ``name``), one row each."""
    from .snapshots import service

    return service.snapshots(current_settings(), name)


def diff(ref_a: str, ref_b: str) -> SnapshotDiff:
    """What changed between two snapshots: schema, rows, columns and row ranges, stats."""
    from .snapshots import service

    return service.diff(current_settings(), ref_a, ref_b)


def verify_snapshots(ref: str | None = None) -> VerifyReport:
    """Re-hash the stored data of one snapshot (default: every version) against its ids."""
    from .snapshots import service

    return service.verify_store(current_settings(), ref)


def gc_snapshots(
    dry_run: bool = False, keep_last: int | None = None, keep_tagged: bool = False
) -> GcReport:
    """Remove stored data that no snapshot version uses; report the bytes reclaimed.

    ``keep_last=N`` first marks every version but the last N of each name removed, except those
    a run or a registered model uses (and tagged ones with ``keep_tagged``).
    """
    from .snapshots import service

    return service.collect_garbage(
        current_settings(), dry_run=dry_run, keep_last=keep_last, keep_tagged=keep_tagged
    )


def remove_snapshot(ref: str, force: bool = False) -> Removal:
    """Mark the version ``NAME@vN`` removed (``%snapshot rm``); the next gc reclaims its data.

    Refused when a run or a registered model uses it, unless ``force``.
    """
    from .snapshots import service

    return service.remove_snapshot(current_settings(), ref, force=force)


# --- data drift (jupyter_mlops/drift) -----------------------------------------------------------
def drift(
    reference: Any,
    current: Any,
    columns: Sequence[str] | None = None,
    *,
    engine: str = "fast",
    method: str | None = None,
    threshold: float | None = None,
    per_column_method: Mapping[str, str] | None = None,
    per_column_threshold: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    sample: int | None = None,
    fail_on: str | None = None,
    save: str | Path | None = None,
    labels: tuple[str, str] | None = None,
    model: str | None = None,
) -> DriftResult:
    """Data drift between DataFrames or snapshot REFs, Evidently's verdicts (``%drift``).

    Inside a tracked run the report is logged to it; ``save`` writes the HTML and JSON;
    ``fail_on`` ("share_drifted > 0.3", "column:age > 0.2") is a gate: its decision is recorded
    like a promotion's (``<home>/reports/``, MLflow, ``%lineage``) and a held condition raises
    GateFailed, or warns when ``gate_mode`` is ``warn``, after the report was logged and saved.
    ``model`` (``NAME@ALIAS`` or ``NAME/VERSION``) records the verdict on that model version.
    """
    from .drift.service import DriftOptions
    from .drift.service import drift as run_drift

    options = DriftOptions(
        columns=tuple(columns) if columns is not None else None,
        engine=engine,
        method=method,
        threshold=threshold,
        per_column_method=dict(per_column_method or {}),
        per_column_threshold=dict(per_column_threshold or {}),
        drift_share=drift_share,
        sample=sample,
        fail_on=fail_on,
        save=save,
        labels=labels or ("reference", "current"),
        model=model,
    )
    return run_drift(current_settings(), reference, current, options)


# --- model registry and gates (jupyter_mlops/registry) -------------------------------------------
def register(
    model: Any,
    name: str,
    run: str | None = None,
    input_example: Any = None,
    flavor: str | None = None,
    features: Any = None,
    factory: Any = None,
) -> ModelVersion:
    """Log a model (torch module, sklearn estimator, callable or model folder) and register it.

    ``run`` defaults to the open tracked run, else this notebook's latest run (``%register``).
    ``features``, a function of a raw DataFrame, is packaged with the model: the version
    computes the features, then predicts, wherever it is loaded. With ``factory`` (a function
    building the untrained torch model), ``model`` is a sharded checkpoint written by
    ``mlops.distributed.save`` (a step folder, a job folder or the cell's
    ``DistributedResult``), consolidated into the factory's model before it is saved.
    """
    from .registry.models import register as register_model

    if factory is not None:
        from .distributed.checkpoint import consolidate

        model = consolidate(model, factory)
    return register_model(
        current_settings(),
        model,
        name,
        run_id=run,
        input_example=input_example,
        flavor=flavor,
        features=features,
    )


def promote(
    model: str,
    to: str,
    require: str | Sequence[str] = (),
    *,
    vs: str | None = None,
    min_delta: float | None = None,
    metric: str | None = None,
    reference: Any = None,
    current: Any = None,
    max_drift_share: float | None = None,
    dry_run: bool = False,
    warn_only: bool = False,
    reason: str | None = None,
    labels: tuple[str, str] | None = None,
    expect: str | Sequence[str] | None = None,
) -> GateResult:
    """Gate a model version and move alias ``to`` only if every check passes (``%promote``).

    ``expect`` names data contracts re-checked on the snapshots the version was trained on."""
    from .contracts.service import expect_checks
    from .drift.gate import gate_spec
    from .registry.gates import promote as run_promotion

    spec = gate_spec(
        require,
        vs=vs,
        min_delta=min_delta,
        metric=metric,
        reference=reference,
        current=current,
        max_drift_share=max_drift_share,
        labels=labels,
        data=expect_checks(expect, model),
    )
    return run_promotion(
        current_settings(), model, to, spec, dry_run=dry_run, warn_only=warn_only, reason=reason
    )


def gate(
    *require: str,
    run: str | None = None,
    vs: str | None = None,
    min_delta: float | None = None,
    metric: str | None = None,
    reference: Any = None,
    current: Any = None,
    max_drift_share: float | None = None,
    warn_only: bool = False,
    reason: str | None = None,
    labels: tuple[str, str] | None = None,
) -> GateResult:
    """The promotion checks on a run (default: this notebook's latest), for CI (``%gate``)."""
    from .drift.gate import gate_spec
    from .registry.gates import gate as run_gate

    spec = gate_spec(
        require,
        vs=vs,
        min_delta=min_delta,
        metric=metric,
        reference=reference,
        current=current,
        max_drift_share=max_drift_share,
        labels=labels,
    )
    return run_gate(current_settings(), spec, run_id=run, warn_only=warn_only, reason=reason)


def load_model(ref: str, flavor: str = "pyfunc") -> Any:
    """Load ``NAME``, ``NAME/VERSION`` or ``NAME@ALIAS`` (``flavor``: pyfunc, pytorch, sklearn)."""
    from .registry.models import load_model as load_registered

    return load_registered(current_settings(), ref, flavor)


# --- batch scoring (jupyter_mlops/serving) -------------------------------------------------------
def score(
    model: str,
    data: Any,
    name: str | None = None,
    *,
    keys: Sequence[str] = (),
    batch_rows: int = 10_000,
) -> Snapshot:
    """Score ``data`` with a model version in batches in a child process (``%score``).

    ``model``: ``NAME@ALIAS`` (resolved once, when scoring starts), ``NAME/VERSION`` or ``NAME``.
    ``data``: a DataFrame, an Arrow table or record-batch reader, a snapshot REF or a Parquet
    file or folder. Returns the predictions snapshot ``name`` (default ``<model>-predictions``):
    the data's index and key columns (``keys``, default the columns the model does not read),
    then ``prediction``. A run records model, version and data, and ``%lineage`` links them.
    """
    from .serving.scoring import score as run_scoring

    return run_scoring(
        current_settings(), model, data, name=name, keys=tuple(keys), batch_rows=batch_rows
    )


# --- real-time endpoints (jupyter_mlops/serving) -------------------------------------------------
def serve(
    model: str,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    workers: int = 1,
    detach: bool = False,
    log_sample: float = 1.0,
    enforce_contract: str | None = None,
) -> Deployment:
    """Serve ``NAME@ALIAS`` over MLflow's scoring protocol in a child process (``%serve``).

    The endpoint follows the alias (``%promote`` moves it: the new version answers within about
    a second, no request fails), logs every request to the inference log (``traffic``), and
    stops with the kernel unless ``detach``. ``port=0`` picks a free port; see ``.url``.
    """
    from .serving.launch import serve as start

    return start(
        current_settings(),
        model,
        port=port,
        host=host,
        workers=workers,
        detach=detach,
        log_sample=log_sample,
        enforce_contract=enforce_contract,
    )


def traffic(model: str, since: Any = None, until: Any = None) -> pd.DataFrame:
    """The inference log of ``NAME@ALIAS`` (or of every alias of ``NAME``), oldest first.

    One row per scored input row: request_id, timestamp (UTC), model, version, latency_ms,
    status, the input columns, ``prediction`` (or ``prediction.<name>``), ``feature.<name>``.
    ``since``/``until``: a timestamp (naive = UTC), a string pandas reads, or a timedelta ago.
    """
    from .serving.traffic import traffic_of

    return traffic_of(current_settings(), model, since=since, until=until)


# --- data contracts and skew (jupyter_mlops/contracts) -----------------------------------------
def expect(name: str, *rules: str, replace: bool = False) -> Contract:
    """Add rules to the data contract on snapshot name ``name`` (``%expect NAME RULE ...``):
    "age between 0 120", "plan in {free, pro}", "customer_id unique", "income not null >=
    0.99", "rows >= 1000", "schema strict"... Every later version of ``name`` must satisfy it."""
    from .contracts.service import expect as declare

    return declare(current_settings(), name, list(rules), replace=replace)


def contracts(name: str | None = None) -> pd.DataFrame:
    """Every version of ``name``'s contract, or the latest of each (``%expect list``)."""
    from .contracts.service import contracts as history

    return history(current_settings(), name)


def check_contract(ref: str, contract: str | None = None) -> ContractResult:
    """Check a snapshot version against its name's contract (``%expect check REF``)."""
    from .contracts.service import check

    return check(current_settings(), ref, contract=contract)


def skew(
    model: str, since: Any = None, key: str | None = None, fail_on: str | None = None
) -> SkewResult:
    """Training-time against serving-time features of ``NAME@ALIAS`` (``%skew``)."""
    from .contracts.skew import skew as compare_skew

    return compare_skew(current_settings(), model, since=since, key=key, fail_on=fail_on)


# --- lineage (jupyter_mlops/lineage) ------------------------------------------------------------
def lineage(obj: Any) -> Lineage:
    """Snapshot -> run -> model version -> drift reports -> gate decisions (``%lineage``).

    ``obj``: a snapshot REF, a run id, ``NAME/VERSION``, ``NAME@ALIAS`` or a result object.
    """
    from .lineage.walk import lineage as walk

    return walk(current_settings(), obj)


def reproduce(run_id: str) -> Reproduction:
    """A run's input snapshots restored (verified by content id), its cell source and params.

    Nothing is executed: run ``.source`` again with ``.data`` and ``.params`` to reproduce it.
    """
    from .lineage.reproduce import reproduce as restore

    return restore(current_settings(), run_id)


# --- monitoring (jupyter_mlops/monitoring) --------------------------------------------------------
def monitor(
    model: str,
    *,
    since: str | None = None,
    until: str | None = None,
    window: str = "1h",
    reference: Any = None,
    data: Any = None,
    fail_on: str | None = None,
    retrain: str | None = None,
    retrain_params: Mapping[str, Any] | None = None,
) -> MonitorResult:
    """Per-window drift, data quality, volume and quality of ``NAME@ALIAS`` (``%monitor``).

    Reads the model's inference log (or ``data``: a DataFrame or snapshot REF of production data)
    against the snapshots its version was trained on (or ``reference``). ``fail_on``
    ("window.share_drifted > 0.3, quality.accuracy < 0.85") is a gate recorded like a
    promotion's; when it fails, ``retrain`` (a notebook) runs through papermill first.
    """
    from .monitoring.service import MonitorOptions
    from .monitoring.service import monitor as run_monitor

    options = MonitorOptions(
        since=since,
        until=until,
        window=window,
        reference=reference,
        data=data,
        fail_on=fail_on,
        retrain=retrain,
        retrain_params=dict(retrain_params or {}),
    )
    return run_monitor(current_settings(), model, options)


def feedback(model: str, request_ids: Sequence[Any], labels: Any = None, **outcomes: Any) -> int:
    """Store ground truth (``labels``) and outcome columns for served requests, by request id."""
    from .monitoring.feedback import feedback as store_feedback

    return store_feedback(current_settings(), model, request_ids, labels, **outcomes)
