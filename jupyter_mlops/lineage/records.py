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

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

DRIFT_FOLDER = "drift"  # jupyter_mlops.drift.publish.ARTIFACT_FOLDER
GATES_FOLDER = "gates"  # jupyter_mlops.registry.decisions.ARTIFACT_DIR
GATE_TAG_PREFIX = "mlops.gate."
DRIFT_TAG_PREFIX = "mlops.drift."  # jupyter_mlops.drift.publish.TAG_PREFIX
TAG_GATE_LAST = "mlops.gate.last"  # jupyter_mlops.registry.decisions.TAG_LAST
TAG_SUPERSEDED = "mlops.superseded_by"
TRACKED_TAGS = ("mlops.run_key", "mlops.notebook_source")
CELL_ARTIFACT = "cell.py"
TAG_BATCH_PARAMETERS = "mlops.batch_parameters"  # set by lineage.batch on papermill runs
DIGEST_PREFIX = "b3:"
DIGEST_HEX = 32  # jupyter_mlops.snapshots.mlflow_link.DIGEST_HEX
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@dataclass(frozen=True)
class SnapshotInput:
    """One snapshot a run read or wrote, as its dataset input records it."""

    id: str
    ref: str
    operation: str  # saved, loaded, or "input" for a dataset logged by other code
    rows: int | None = None
    columns: int | None = None
    files: int | None = None

    @property
    def name(self) -> str:
        return self.ref.partition("@")[0]


def mlflow_digest(snapshot_id: str) -> str:
    return f"{DIGEST_PREFIX}{snapshot_id[:DIGEST_HEX]}"


def snapshot_inputs(run: Any) -> list[SnapshotInput]:
    """The snapshots among a run's dataset inputs (other datasets are ignored), first use first."""
    found: dict[str, SnapshotInput] = {}
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        tags = {t.key: t.value for t in dataset_input.tags}
        dataset = dataset_input.dataset
        snapshot_id = tags.get("snapshot.id")
        if snapshot_id is None:
            continue
        profile = _json(dataset.profile)
        schema = _json(dataset.schema)
        columns = schema.get("snapshot_columns") if isinstance(schema, dict) else None
        entry = SnapshotInput(
            id=snapshot_id,
            ref=tags.get("snapshot.ref", dataset.name),
            operation=tags.get("snapshot.operation", "input"),
            rows=profile.get("num_rows") if isinstance(profile, dict) else None,
            columns=len(columns) if isinstance(columns, list) else None,
            files=profile.get("files") if isinstance(profile, dict) else None,
        )
        known = found.get(entry.ref)
        if known is None:
            found[entry.ref] = entry
        elif known.operation != "saved" and entry.operation == "saved":
            found[entry.ref] = entry  # saved in the run wins over a later load
    return list(found.values())


def _json(text: str | None) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return {}


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


def is_tracked(run: Any) -> bool:
    """Opened by ``%%track`` / ``mlops.track`` (a plain MLflow run has none of our tags)."""
    return any(tag in run.data.tags for tag in TRACKED_TAGS)


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


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """MLflow draws a download progress bar on stderr per artifact; a notebook needs none."""
    saved = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(PROGRESS_BAR, None)
        else:
            os.environ[PROGRESS_BAR] = saved


def local_artifacts(run: Any) -> Path | None:
    """The artifact folder of a run whose artifacts are on this machine (read directly: MLflow's
    artifact API costs tens of milliseconds per call)."""
    parsed = urlparse(run.info.artifact_uri or "")
    if parsed.scheme not in ("", "file"):
        return None
    folder = Path(unquote(parsed.path))
    return folder if folder.is_dir() else None


def artifact_text(client: MlflowClient, run: Any, path: str) -> str | None:
    """One artifact's text, or None when the run has no such artifact."""
    from mlflow.exceptions import MlflowException

    folder = local_artifacts(run)
    if folder is not None:
        try:
            return (folder / path).read_text(encoding="utf-8")
        except OSError:
            return None
    with tempfile.TemporaryDirectory(prefix="mlops-lineage-") as tmp, no_progress_bars():
        try:
            local = client.download_artifacts(run.info.run_id, path, tmp)
            return Path(local).read_text(encoding="utf-8")
        except (MlflowException, OSError):
            return None


def read_json_artifacts(client: MlflowClient, run: Any, folder: str) -> list[tuple[str, Any]]:
    """(artifact path, parsed JSON) of every ``*.json`` directly under ``folder`` of a run."""
    from mlflow.exceptions import MlflowException

    local = local_artifacts(run)
    if local is not None:
        paths = [f"{folder}/{p.name}" for p in (local / folder).glob("*.json")]
    else:
        try:
            listed = client.list_artifacts(run.info.run_id, folder)
        except (MlflowException, OSError):
            return []
        paths = [f.path for f in listed if f.path.endswith(".json")]
    found = []
    for path in sorted(paths):
        try:
            found.append((path, json.loads(artifact_text(client, run, path) or "")))
        except ValueError:
            continue
    return found


def drift_reports(client: MlflowClient, run: Any) -> list[tuple[str, dict[str, Any]]]:
    """The ``%drift`` reports logged to a run (only runs that carry drift tags are asked)."""
    if not any(k.startswith("mlops.drift.") for k in run.data.tags):
        return []
    return [
        (path, data)
        for path, data in read_json_artifacts(client, run, DRIFT_FOLDER)
        if isinstance(data, dict) and "share_drifted" in data
    ]


def gate_decisions(client: MlflowClient, run: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every decision recorded on a run's ``gates/`` artifacts, oldest first."""
    decisions = [
        (path, data)
        for path, data in read_json_artifacts(client, run, GATES_FOLDER)
        if isinstance(data, dict) and "decision" in data
    ]
    return sorted(decisions, key=lambda item: str(item[1].get("at", "")))


def drift_checks(version: Any) -> list[tuple[str, dict[str, Any]]]:
    """``%drift --model`` verdicts kept on a version's ``mlops.drift.<report>`` tags."""
    found = []
    for key, value in sorted((version.tags or {}).items()):
        data = _json(value) if key.startswith(DRIFT_TAG_PREFIX) else None
        if isinstance(data, dict) and "share_drifted" in data:
            found.append((key, data))
    return found


def decisions_from_tags(version: Any) -> list[dict[str, Any]]:
    """The latest decision per alias kept on the version's tags (a fallback for lost artifacts)."""
    found: dict[str, dict[str, Any]] = {}
    for key, value in (version.tags or {}).items():
        if key.startswith(GATE_TAG_PREFIX):
            data = _json(value)
            if isinstance(data, dict) and "decision" in data:
                found[str(data.get("at", key))] = data
    return [found[at] for at in sorted(found)]
