"""``%drift`` and ``mlops.drift`` as the faces call them, with explicit :class:`Settings`.

Resolve the inputs (DataFrames or snapshot REFs), compute, log the report to the active run,
record it on a model version (``--model``), save it (``--save``), then conclude ``--fail-on``
through the registry's decision path: the decision is kept in ``<home>/reports/`` (JSON + JUnit),
on the model version or the run in MLflow, and so in ``%lineage``, like a promotion's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings
from . import inputs
from .engine import compute_drift
from .gate import fail_on_checks, parse_fail_on
from .publish import link_model, log_report, save_report
from .result import DriftResult

if TYPE_CHECKING:
    from ..registry.results import GateResult
    from ..tracking.active import ActiveRun


API_STACKLEVEL = 5  # a warning names the line calling mlops.drift: conclude <- gate <- drift <- api


@dataclass(frozen=True)
class DriftOptions:
    """What a face asks of one drift comparison (``%drift`` flags, ``mlops.drift`` arguments)."""

    columns: tuple[str, ...] | None = None
    engine: str = "fast"
    method: str | None = None
    threshold: float | None = None
    per_column_method: Mapping[str, str] = field(default_factory=dict)
    per_column_threshold: Mapping[str, float] = field(default_factory=dict)
    drift_share: float = 0.5
    sample: int | None = None
    fail_on: str | None = None
    save: str | Path | None = None
    labels: tuple[str, str] = ("reference", "current")  # names of DataFrames given as such
    model: str | None = None  # NAME@ALIAS or NAME/VERSION: record the verdict on it


def drift(settings: Settings, reference: Any, current: Any, options: DriftOptions) -> DriftResult:
    """Compare, publish, then gate: a held ``--fail-on`` raises GateFailed (warns with
    ``gate_mode=warn``) after the report was logged and saved."""
    result = compare(settings, reference, current, options)
    gate(settings, result, options)
    return result


def compare(settings: Settings, reference: Any, current: Any, options: DriftOptions) -> DriftResult:
    """The report, logged to the active run, recorded on ``--model`` and saved: no gate yet."""
    from ..registry.models import resolve_version
    from ..tracking.client import mlflow_client

    run = _active_run()
    # A typo in --fail-on or --model must not cost a long computation first.
    if options.fail_on is not None:
        parse_fail_on(options.fail_on)
    tracking_uri = run.tracking_uri if run else settings.tracking_uri
    version = resolve_version(mlflow_client(tracking_uri), options.model) if options.model else None
    reference, reference_label = inputs.resolve(settings, reference, options.labels[0])
    current, current_label = inputs.resolve(settings, current, options.labels[1])
    result = compute_drift(
        reference,
        current,
        options.columns,
        engine=options.engine,
        method=options.method,
        threshold=options.threshold,
        per_column_method=options.per_column_method,
        per_column_threshold=options.per_column_threshold,
        drift_share=options.drift_share,
        sample=options.sample,
        reference_label=reference_label,
        current_label=current_label,
    )
    artifact = log_report(result, run) if run is not None else None
    if version is not None:
        link_model(result, version, tracking_uri, run.run_id if run else None, artifact)
    if options.save is not None:
        save_report(result, options.save)
    return result


def gate(settings: Settings, result: DriftResult, options: DriftOptions) -> GateResult | None:
    """Conclude ``--fail-on`` as a recorded decision (None without ``--fail-on``).

    The decision is kept where a promotion's is: with ``--model`` on that version (and the JSON
    on its run), else on the active run, and always in ``<home>/reports/``.
    """
    if options.fail_on is None:
        return None
    from ..registry.gates import conclude, verdict
    from ..registry.models import resolve_version
    from ..tracking.client import mlflow_client

    rows = fail_on_checks(result, options.fail_on)
    run = _active_run()
    subject = f"drift {result.reference.label} vs {result.current.label}"
    if run is None and options.model is None:  # nothing in MLflow to keep it on: reports only
        return conclude(settings, None, verdict(subject, rows), False, API_STACKLEVEL)
    client = mlflow_client(run.tracking_uri if run else settings.tracking_uri)
    if options.model is not None:
        version = resolve_version(client, options.model)
        decision = verdict(
            subject,
            rows,
            model=version.name,
            version=int(version.version),
            run_id=version.run_id or (run.run_id if run else None),
        )
    else:
        decision = verdict(subject, rows, run_id=run.run_id if run else None)
    return conclude(settings, client, decision, False, API_STACKLEVEL)


def _active_run() -> ActiveRun | None:
    from ..tracking.active import active_run

    return active_run()
