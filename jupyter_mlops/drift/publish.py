"""Where a drift report goes besides the notebook: files (``--save``) and the active MLflow run."""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import records
from ..errors import MLOpsUsageError
from ..tracking.active import ActiveRun
from .report_html import drift_document
from .result import DriftResult

ARTIFACT_FOLDER = records.DRIFT_FOLDER
TAG_PREFIX = records.TAG_DRIFT_PREFIX
MODEL_TAG = records.TAG_DRIFT_MODEL  # on the run: the model version a report was checked for
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


def report_name(result: DriftResult) -> str:
    """``<reference>_vs_<current>``, safe as a file and an MLflow key."""
    return _UNSAFE.sub("_", f"{result.reference.label}_vs_{result.current.label}").replace("/", "_")


def save_report(result: DriftResult, path: str | Path) -> tuple[Path, Path]:
    """Write the standalone HTML to ``path`` (``.html`` if no suffix) and the JSON beside it."""
    html_path = Path(path).expanduser()
    if html_path.suffix == "":
        html_path = html_path.with_suffix(".html")
    json_path = write_report(result, html_path)
    result.links["saved to"] = f"{html_path} (+ {json_path.name})"
    return html_path, json_path


def write_report(result: DriftResult, html_path: Path) -> Path:
    json_path = html_path.with_suffix(".json")
    try:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(drift_document(result), encoding="utf-8")
        json_path.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise MLOpsUsageError(
            f"cannot write the drift report to {html_path}: {exc.strerror}"
        ) from None
    return json_path


def log_report(result: DriftResult, run: ActiveRun) -> str:
    """Log share drifted and each column's statistic as metrics, the JSON and HTML as artifacts.

    Metrics go in one ``log_batch`` call (single ``log_metric`` calls cost ~10 ms each on SQLite).
    Returns the artifact folder of the report inside the run.
    """
    from mlflow.entities import Metric, RunTag

    from ..tracking.client import mlflow_client

    name = report_name(result)
    now = int(time.time() * 1000)
    values = {
        "drift.share_drifted": result.share_drifted,
        "drift.n_drifted": float(result.n_drifted),
        "drift.broken_columns": float(result.n_broken),
        **{f"drift.{_UNSAFE.sub('_', r.column)}.{r.test}": r.statistic for r in result.results},
    }
    metrics = [Metric(k, v, now, 0) for k, v in values.items() if math.isfinite(v)]
    tags = [
        RunTag(records.TAG_DRIFT_REFERENCE, result.reference.label),
        RunTag(records.TAG_DRIFT_CURRENT, result.current.label),
        RunTag(records.TAG_DRIFT_DRIFTED, str(result.drifted).lower()),
    ]
    if result.broken:
        tags.append(RunTag(records.TAG_DRIFT_BROKEN, ", ".join(c for c, _ in result.broken)))
    client = mlflow_client(run.tracking_uri)
    client.log_batch(run.run_id, metrics=metrics, tags=tags)
    with tempfile.TemporaryDirectory(prefix="mlops-drift-") as folder:
        html_path = Path(folder) / f"{name}.html"
        json_path = write_report(result, html_path)
        for path in (json_path, html_path):
            client.log_artifact(run.run_id, str(path), ARTIFACT_FOLDER)
    result.links["logged to run"] = f"{run.run_id} ({ARTIFACT_FOLDER}/{name}.html)"
    return f"{ARTIFACT_FOLDER}/{name}"


def link_model(
    result: DriftResult, version: Any, tracking_uri: str, run_id: str | None, artifact: str | None
) -> str:
    """Record the report on an MLflow model version (resolved from ``--model``).

    The version gets a tag ``mlops.drift.<report>`` holding the verdict and where the full
    report lives (the run and artifact, when a tracked run logged it); the run gets
    ``mlops.drift.model``. Returns ``NAME/VERSION``.
    """
    from ..tracking.client import mlflow_client

    client = mlflow_client(tracking_uri)
    summary = {
        key: value for key, value in result.to_dict().items() if key not in ("columns", "skipped")
    }
    summary.update(run_id=run_id, artifact=artifact, at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    name = f"{version.name}/{version.version}"
    client.set_model_version_tag(
        version.name, version.version, TAG_PREFIX + report_name(result), json.dumps(summary)
    )
    if run_id is not None:
        client.set_tag(run_id, MODEL_TAG, name)
    result.links["checked for model"] = name
    return name
