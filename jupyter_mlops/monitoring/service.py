"""``%monitor`` and ``mlops.monitor`` as the faces call them, with explicit :class:`Settings`.

Read the logged requests (the serving log of NAME@ALIAS, or data given instead), find the
reference through lineage, compute the windows, then publish: a monitoring run (metrics per
window, the HTML and JSON report, the drift report of the most drifted window), the model
version's ``mlops.monitor.last`` tag and drift check (so ``%lineage`` shows it), and
``<home>/monitoring/latest/`` (what ``GET monitor`` answers). ``--fail-on`` concludes through the
registry's decision path; when it fails, ``--retrain`` runs its notebook before GateFailed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import records
from ..config import Settings
from ..errors import GateFailed, MLOpsNotFound, MLOpsUsageError
from . import reference as references
from .feedback import read_feedback
from .gate import fail_on_checks, parse_fail_on
from .naming import slug
from .result import MonitorResult
from .windows import TIMESTAMP, compute_windows, split_columns

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.tracking import MlflowClient


API_STACKLEVEL = 4  # a gate warning names the line calling mlops.monitor


@dataclass(frozen=True)
class MonitorOptions:
    since: str | None = None  # ISO time, or a duration back from now ("24h")
    until: str | None = None
    window: str = "1h"
    reference: Any = None  # REF or DataFrame; None: the training snapshots, through lineage
    data: Any = None  # production data instead of the inference log (DataFrame or REF)
    fail_on: str | None = None
    retrain: str | None = None  # a notebook papermill runs when the gate fails
    retrain_params: Mapping[str, Any] = field(default_factory=dict)
    labels: tuple[str, str] = ("reference", "production data")  # names of DataFrames given
    log: bool = True  # publish to MLflow and <home>/monitoring/


def duration(text: str) -> pd.Timedelta:
    """``pd.to_timedelta``, reading the day unit users write (``7d``) as pandas 4 wants (``D``)."""
    import pandas as pd

    return pd.to_timedelta(re.sub(r"(?<=\d)\s*d$", "D", text.strip()))


def parse_window(text: str) -> pd.Timedelta:
    import pandas as pd

    try:
        size = duration(text)
    except (ValueError, TypeError):
        size = None
    if size is None or size <= pd.Timedelta(0):
        raise MLOpsUsageError(f"--window {text!r}: give a duration such as 15min, 1h or 1d")
    return size


def parse_time(text: str | None, flag: str) -> pd.Timestamp | None:
    """An ISO time (UTC unless it says otherwise) or a duration back from now (``24h``)."""
    import pandas as pd

    if text is None:
        return None
    try:
        return pd.Timestamp.now(tz="UTC") - duration(text)
    except (ValueError, TypeError):
        pass
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise MLOpsUsageError(
            f"{flag} {text!r}: give an ISO time (2026-11-30T03:00) or a duration back from now "
            "(24h, 7d)"
        ) from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def monitor(settings: Settings, model: str, options: MonitorOptions) -> MonitorResult:
    """Compute, publish, gate (and retrain when the gate fails)."""
    result = compute(settings, model, options)
    if options.log:
        publish(settings, result)
    if options.fail_on is not None:
        conclude_gate(settings, result, options)
    return result


def compute(settings: Settings, model: str, options: MonitorOptions) -> MonitorResult:
    import pandas as pd

    from ..registry.models import resolve_version
    from ..tracking.client import mlflow_client

    size = parse_window(options.window)
    since, until = parse_time(options.since, "--since"), parse_time(options.until, "--until")
    if options.fail_on is not None:
        parse_fail_on(options.fail_on)  # a typo must not cost the computation first
    if options.retrain is not None and options.fail_on is None:
        raise MLOpsUsageError("--retrain needs --fail-on: it runs when that gate fails")
    if options.retrain is not None and not Path(options.retrain).is_file():
        raise MLOpsUsageError(f"--retrain {options.retrain!r}: no such notebook")
    client = mlflow_client(settings.tracking_uri)
    version = resolve_version(client, model)
    traffic, current = _traffic(settings, model, options, since, until)
    if TIMESTAMP not in traffic.columns:
        raise MLOpsUsageError(
            f"the monitored data has no {TIMESTAMP!r} column; log requests through %serve or add "
            "one (UTC times)"
        )
    traffic = traffic.copy()
    traffic[TIMESTAMP] = pd.to_datetime(traffic[TIMESTAMP], utc=True)
    if since is not None:
        traffic = traffic[traffic[TIMESTAMP] >= since]
    if until is not None:
        traffic = traffic[traffic[TIMESTAMP] < until]
    if traffic.empty:
        raise MLOpsUsageError(
            f"no logged requests for {model} in the chosen span; widen --since or send traffic"
        )
    if options.reference is not None:
        ref = references.given(settings, options.reference, options.labels[0])
    else:
        ref = references.from_lineage(settings, version, [str(c) for c in traffic.columns])
    columns = split_columns(traffic, ref.frame)
    notes: list[str] = []
    predictions = _reference_predictions(settings, version, ref.frame, columns, notes)
    stats = compute_windows(
        traffic,
        ref.frame,
        columns,
        size,
        reference_predictions=predictions,
        feedback=read_feedback(settings, model),
        since=since,
        until=until,
        reference_label=ref.label,
        current_label=f"{model} window",
    )
    return MonitorResult(
        model=model,
        version=int(version.version),
        reference=ref.label,
        reference_source=ref.source,
        current=current,
        window=options.window,
        windows=stats.frame,
        inputs=columns.inputs,
        predictions=columns.predictions,
        task=stats.task,
        reports=stats.reports,
        notes=tuple(notes + stats.notes),
    )


def _traffic(
    settings: Settings, model: str, options: MonitorOptions, since: Any, until: Any
) -> tuple[pd.DataFrame, str]:
    from ..drift import inputs
    from .naming import model_name

    if options.data is not None:
        frame, label = inputs.resolve(settings, options.data, options.labels[1])
        return frame, label
    try:
        from ..serving.traffic import read_traffic
    except ImportError:
        raise MLOpsUsageError(
            "this install has no inference log reader (jupyter_mlops.serving); pass the "
            "production data with data=DATAFRAME or --data REF"
        ) from None
    name, _, alias = model.partition("@")
    frame = read_traffic(settings, model_name(name), alias or None, since=since, until=until)
    return frame, f"inference log of {model}"


def _reference_predictions(
    settings: Settings, version: Any, reference: pd.DataFrame, columns: Any, notes: list[str]
) -> pd.DataFrame | None:
    """The model's outputs on the reference, named like the logged outputs."""
    import numpy as np
    import pandas as pd

    from ..registry.models import load_model

    if not columns.predictions:
        return None
    try:
        loaded = load_model(settings, f"{version.name}/{version.version}")
        output = loaded.predict(reference[list(columns.inputs)])
    except Exception as exc:  # any model may fail on the reference: say so, keep the rest
        notes.append(
            f"no prediction drift: the model could not predict on the reference "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        )
        return None
    values = output.to_numpy() if isinstance(output, pd.DataFrame) else np.asarray(output)
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    if values.shape[1] != len(columns.predictions):
        notes.append(
            f"no prediction drift: the model gives {values.shape[1]} outputs per row, the log "
            f"has {len(columns.predictions)} ({', '.join(columns.predictions)})"
        )
        return None
    return pd.DataFrame(values, columns=list(columns.predictions))


# --- publishing ------------------------------------------------------------------------------
def publish(settings: Settings, result: MonitorResult) -> None:
    """The monitoring run, the version's tags and the latest result on disk."""
    from ..tracking.active import active_run
    from ..tracking.client import mlflow_client

    run = active_run()
    client = mlflow_client(run.tracking_uri if run else settings.tracking_uri)
    own = run is None
    run_id = run.run_id if run else _open_run(settings, client, result.model)
    try:
        _log_run(client, run_id, result)
        result.run_id = run_id
        _tag_version(client, result, run_id, run.tracking_uri if run else settings.tracking_uri)
    finally:
        if own:
            client.set_terminated(run_id, "FINISHED")
    write_latest(settings, result)


def _open_run(settings: Settings, client: MlflowClient, model: str) -> str:
    from ..tracking.run import experiment_id

    exp = experiment_id(client, records.MONITOR_EXPERIMENT, settings.home, settings.tracking_uri)
    run = client.create_run(
        exp, run_name=f"monitor {model}", tags={records.TAG_MONITOR_MODEL: model}
    )
    return str(run.info.run_id)


def _log_run(client: MlflowClient, run_id: str, result: MonitorResult) -> None:
    import math

    from mlflow.entities import Metric

    from .report_html import monitor_document

    metrics = []
    for step, record in enumerate(result.windows.to_dict("records")):
        stamp = int(record["window"].timestamp() * 1000)
        for key, value in record.items():
            if isinstance(value, bool):
                value = float(value)
            if isinstance(value, int | float) and math.isfinite(value):
                metrics.append(
                    Metric(f"monitor.{_metric_key(str(key))}", float(value), stamp, step)
                )
    for start in range(0, len(metrics), 900):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(run_id, metrics=metrics[start : start + 900])
    client.set_tag(run_id, records.TAG_MONITOR_MODEL, result.model)
    name = slug(result.model)
    with tempfile.TemporaryDirectory(prefix="mlops-monitor-") as folder:
        html = Path(folder) / f"{name}.html"
        html.write_text(monitor_document(result), encoding="utf-8")
        data = Path(folder) / f"{name}.json"
        data.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
        for path in (html, data):
            client.log_artifact(run_id, str(path), records.MONITOR_FOLDER)
    result.links["logged to run"] = f"{run_id} ({records.MONITOR_FOLDER}/{name}.html)"


def _metric_key(column: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", column)


def _tag_version(client: MlflowClient, result: MonitorResult, run_id: str, uri: str) -> None:
    """``mlops.monitor.last`` on the version, and the most drifted window's report as its drift
    check, logged in the monitoring run: ``%lineage`` shows both."""
    from ..drift.publish import link_model, log_report
    from ..registry.models import resolve_version
    from ..tracking.active import ActiveRun

    version = resolve_version(client, f"{result.model.partition('@')[0]}/{result.version}")
    summary = {
        "run_id": run_id,
        "model": result.model,
        "reference": result.reference,
        "windows": len(result.windows),
        "drifted_windows": len(result.drifted_windows),
        "passed": result.passed,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    client.set_model_version_tag(
        version.name, version.version, records.TAG_MONITOR_LAST, json.dumps(summary)
    )
    if not result.reports:
        return
    worst = max(result.reports.values(), key=lambda r: (r.share_drifted, r.n_broken))
    artifact = log_report(worst, ActiveRun(run_id, uri))
    link_model(worst, version, uri, run_id, artifact)


def latest_path(settings: Settings, model: str) -> Path:
    return (
        settings.home
        / records.MONITORING_DIRNAME
        / records.MONITOR_LATEST_DIRNAME
        / f"{slug(model)}.json"
    )


def write_latest(settings: Settings, result: MonitorResult) -> None:
    path = latest_path(settings, result.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(result.to_dict()) + "\n", encoding="utf-8")
    os.replace(partial, path)


def latest(settings: Settings, model: str) -> dict[str, Any]:
    """The latest monitoring result of NAME@ALIAS (``GET monitor``)."""
    path = latest_path(settings, model)
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise MLOpsNotFound(
            f"{model} has not been monitored in this store; run %monitor {model}"
        ) from None
    except ValueError:
        raise MLOpsUsageError(
            f"the latest monitoring result of {model} is damaged ({path})"
        ) from None


# --- the gate and retraining -------------------------------------------------------------------
def conclude_gate(settings: Settings, result: MonitorResult, options: MonitorOptions) -> None:
    """Record the decision like a promotion's; on failure retrain first, then raise (or warn)."""
    from ..registry.gates import conclude, verdict
    from ..tracking.client import mlflow_client

    rows, held = fail_on_checks(result.windows, options.fail_on or "")
    name = result.model.partition("@")[0].partition("/")[0]
    decision = verdict(
        f"monitor {result.model}",
        rows,
        model=name,
        version=result.version,
        run_id=result.run_id,
    )
    passed = decision.passed
    if not passed and options.retrain is not None:
        from .retrain import retrain

        reason = "; ".join(f"{r.name} ({r.detail})" for r in rows if not r.passed)
        window = held[0].isoformat() if held else ""
        result.retrain = retrain(
            settings, options.retrain, options.retrain_params, window, reason, result.run_id
        )
    client = mlflow_client(settings.tracking_uri) if options.log else None
    try:
        result.gate = conclude(settings, client, decision, False, API_STACKLEVEL)
    except GateFailed as failed:
        result.gate = replace(decision, reports=getattr(failed, "result", decision).reports)
        if options.log:
            write_latest(settings, result)
        failed.monitor = result  # type: ignore[attr-defined]
        raise
    if options.log:
        write_latest(settings, result)
