"""Rich (HTML) forms of result objects, registered with IPython's display formatters.

Result objects carry their own deterministic text form (``__repr__``); this package only adds
``text/html``, and nothing here computes: it formats what the core returned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .contracts import contract_html, contract_result_html, skew_html
from .diagnostics import doctor_html, status_html
from .distributed import distributed_result_html, distributed_status_html
from .drift import drift_html
from .lineage import lineage_html
from .monitoring import monitor_html, schedules_html
from .registry import gate_html, model_version_html
from .serving import bench_html, deployment_html, kserve_html, serving_status_html
from .snapshots import diff_html, gc_html, removal_html, snapshot_html, verify_html
from .tracking import comparison_html, runs_html, summary_html

RENDERERS: dict[str, Callable[[Any], str]] = {
    "jupyter_mlops.contracts.store.Contract": contract_html,
    "jupyter_mlops.contracts.results.ContractResult": contract_result_html,
    "jupyter_mlops.contracts.skew.SkewResult": skew_html,
    "jupyter_mlops.drift.result.DriftResult": drift_html,
    "jupyter_mlops.lineage.graph.Lineage": lineage_html,
    "jupyter_mlops.monitoring.result.MonitorResult": monitor_html,
    "jupyter_mlops.monitoring.schedules.ScheduleList": schedules_html,
    "jupyter_mlops.registry.results.GateResult": gate_html,
    "jupyter_mlops.registry.results.ModelVersion": model_version_html,
    "jupyter_mlops.serving.results.Deployment": deployment_html,
    "jupyter_mlops.serving.results.ServingStatus": serving_status_html,
    "jupyter_mlops.serving.results.BenchResult": bench_html,
    "jupyter_mlops.serving.results.KServeExport": kserve_html,
    "jupyter_mlops.snapshots.results.Snapshot": snapshot_html,
    "jupyter_mlops.snapshots.results.SnapshotDiff": diff_html,
    "jupyter_mlops.snapshots.results.VerifyReport": verify_html,
    "jupyter_mlops.snapshots.results.GcReport": gc_html,
    "jupyter_mlops.snapshots.retention.Removal": removal_html,
    "jupyter_mlops.distributed.results.DistributedResult": distributed_result_html,
    "jupyter_mlops.distributed.results.DistributedStatus": distributed_status_html,
    "jupyter_mlops.diagnostics.Status": status_html,
    "jupyter_mlops.diagnostics.DoctorReport": doctor_html,
    "jupyter_mlops.tracking.run.RunSummary": summary_html,
    "jupyter_mlops.tracking.query.RunsFrame": runs_html,
    "jupyter_mlops.tracking.compare.Comparison": comparison_html,
}


def rich_enabled() -> bool:
    from ..context import current_settings

    return current_settings().display != "text"


def register_formatters(shell: Any) -> None:
    """Teach the shell's HTML formatter our result types (by name: no import of their modules)."""
    html = shell.display_formatter.formatters["text/html"]
    for dotted, render in RENDERERS.items():
        module, _, name = dotted.rpartition(".")
        html.for_type_by_name(module, name, _when_rich(render))


def _when_rich(render: Callable[[Any], str]) -> Callable[[Any], str | None]:
    def maybe(obj: Any) -> str | None:
        return render(obj) if rich_enabled() else None

    return maybe
