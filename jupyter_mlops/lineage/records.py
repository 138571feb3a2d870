"""Reading what the other magics recorded, and nothing more.

- ``%snapshot`` inside a run: an MLflow dataset input named ``NAME@vN`` with our digest and the
  tags ``snapshot.ref``, ``snapshot.id``, ``snapshot.operation`` (saved or loaded).
- ``%register``: a model version with ``run_id`` and the tags ``mlops.snapshots`` /
  ``mlops.snapshot_ids``.
- ``%drift`` inside a run: ``drift/<reference>_vs_<current>.json`` (and ``.html``) artifacts.
- ``%promote`` / ``%gate``: ``gates/<stem>.json`` artifacts on the version's run, and the latest
  decision per alias as ``mlops.gate.*`` version tags (read when the artifacts are gone).

Every reader returns what it finds; a missing piece is an empty result, never an exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import records
from ..records import SnapshotInput, is_tracked, mlflow_digest, snapshot_inputs
from ..registry.history import decisions_from_tags, gate_decisions
from ..tracking.artifacts import artifact_text, local_artifacts, read_json_artifacts

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = [
    "SnapshotInput",
    "artifact_text",
    "decisions_from_tags",
    "gate_decisions",
    "is_tracked",
    "local_artifacts",
    "mlflow_digest",
    "snapshot_inputs",
]
_json = records.parse_json


def experiment_ids(client: MlflowClient) -> list[str]:
    return [e.experiment_id for e in client.search_experiments()]


def runs_using(client: MlflowClient, snapshot_id: str) -> list[Any]:
    """Every active run whose inputs include this snapshot, oldest first."""
    experiments = experiment_ids(client)
    if not experiments:
        return []
    runs = client.search_runs(
        experiments,
        filter_string=f"dataset.digest = '{mlflow_digest(snapshot_id)}'",
        order_by=["attributes.start_time ASC"],
        max_results=1000,
    )
    return [r for r in runs if any(s.id == snapshot_id for s in snapshot_inputs(r))]


def versions_of_run(client: MlflowClient, run_id: str) -> list[Any]:
    """Model versions registered from a run (empty when the store has no registry)."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"run_id = '{run_id}'")
    except MlflowException:
        return []
    return sorted(found, key=lambda v: (v.name, int(v.version)))


def aliases_of(client: MlflowClient, name: str) -> dict[str, int]:
    """Every alias of a registered model and the version it points to."""
    from mlflow.exceptions import MlflowException

    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException:
        return {}
    return {alias: int(v) for alias, v in aliases.items()}


def drift_reports(client: MlflowClient, run: Any) -> list[tuple[str, dict[str, Any]]]:
    """The ``%drift`` reports logged to a run (only runs that carry drift tags are asked)."""
    if not records.has_drift(run.data.tags):
        return []
    return [
        (path, data)
        for path, data in read_json_artifacts(client, run, records.DRIFT_FOLDER)
        if isinstance(data, dict) and "share_drifted" in data
    ]


def drift_checks(version: Any) -> list[tuple[str, dict[str, Any]]]:
    """``%drift --model`` verdicts kept on a version's ``mlops.drift.<report>`` tags."""
    found = []
    for key, value in sorted((version.tags or {}).items()):
        data = _json(value) if key.startswith(records.TAG_DRIFT_PREFIX) else None
        if isinstance(data, dict) and "share_drifted" in data:
            found.append((key, data))
    return found


def scoring_runs(client: MlflowClient, pinned: str) -> list[Any]:
    """The ``%score`` runs of a model version (``NAME/VERSION``), oldest first."""
    experiments = experiment_ids(client)
    if not experiments:
        return []
    return list(
        client.search_runs(
            experiments,
            filter_string=f"tags.`{records.TAG_SCORE_MODEL}` = '{pinned}'",
            order_by=["attributes.start_time ASC"],
            max_results=1000,
        )
    )


def model_version(client: MlflowClient, pinned: str) -> Any | None:
    """The registered version ``NAME/VERSION`` names, or None when it is gone."""
    from mlflow.exceptions import MlflowException

    name, _, number = pinned.rpartition("/")
    try:
        return client.get_model_version(name, number)
    except MlflowException:
        return None
