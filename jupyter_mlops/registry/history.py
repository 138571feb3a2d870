"""Gate history, read from MLflow: the one source for ``%lineage`` and the panel.

Every decision is a ``gates/<stem>.json`` artifact on the run of the gated version (or run);
when those artifacts are gone, the version's ``mlops.gate.*`` tags still hold the latest decision
per alias. ``<home>/reports/`` is an export for CI and is never read back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import records
from ..tracking.artifacts import read_json_artifacts

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


def gate_decisions(client: MlflowClient, run: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every decision recorded on a run's ``gates/`` artifacts, oldest first."""
    decisions = [
        (path, data)
        for path, data in read_json_artifacts(client, run, records.GATES_FOLDER)
        if isinstance(data, dict) and "decision" in data
    ]
    return sorted(decisions, key=lambda item: str(item[1].get("at", "")))


def decisions_from_tags(version: Any) -> list[dict[str, Any]]:
    """The latest decision per alias kept on the version's tags (a fallback for lost artifacts)."""
    found: dict[str, dict[str, Any]] = {}
    for key, value in (version.tags or {}).items():
        if key.startswith(records.TAG_GATE_PREFIX):
            data = records.parse_json(value)
            if isinstance(data, dict) and "decision" in data:
                found[str(data.get("at", key))] = data
    return [found[at] for at in sorted(found)]


def version_decisions(
    client: MlflowClient, version: Any, run: Any | None
) -> list[tuple[str, dict[str, Any]]]:
    """(where it is kept, decision) for every decision on one model version, oldest first.

    ``run`` is the version's run (None when it is gone): its ``gates/`` artifacts, else the
    version's tags."""
    name, number = version.name, int(version.version)
    if run is not None:
        found = [
            (f"{run.info.run_id}:{path}", d)
            for path, d in gate_decisions(client, run)
            if d.get("model") == name and d.get("version") == number
        ]
        if found:
            return found
    key = f"model:{name}/{number}"
    return [(f"{key}:{d.get('at', '')}", d) for d in decisions_from_tags(version)]
