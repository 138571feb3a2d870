"""``mlops.reproduce(RUN_ID)``: the exact inputs, code and params of a recorded run, back.

Each input snapshot is loaded by its content id (not its name, which could point elsewhere in
another store), so every cell is re-hashed against the id the run recorded. The cell source and
params are returned for the user to run again; nothing is executed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import records as names
from ..config import Settings
from ..errors import MLOpsUsageError
from ..tracking.client import mlflow_client
from . import records


@dataclass(frozen=True)
class Reproduction:
    """A run's restored inputs (``data``: REF -> DataFrame or restored path), cell source and
    params. ``source`` is None for runs that recorded none (plain MLflow runs)."""

    run_id: str
    run_name: str
    experiment: str
    source: str | None
    params: Mapping[str, str]
    data: Mapping[str, Any] = field(default_factory=dict)
    snapshot_ids: Mapping[str, str] = field(default_factory=dict)
    notebook: str | None = None
    batch_parameters: tuple[str, ...] = ()

    def __repr__(self) -> str:
        lines = [f"reproduce run {self.run_name!r} of experiment {self.experiment!r}"]
        for ref, value in self.data.items():
            shape = getattr(value, "shape", None)
            what = f"{shape[0]:,} rows x {shape[1]} columns" if shape else str(value)
            lines.append(
                f"  restored {ref} ({what}), verified against id {self.snapshot_ids[ref][:8]}"
            )
        if not self.data:
            lines.append("  no input snapshots were recorded")
        for key, value in sorted(self.params.items()):
            origin = " (papermill)" if key in self.batch_parameters else ""
            lines.append(f"  param {key} = {value}{origin}")
        if self.source is None:
            lines.append("  no cell source was recorded")
        else:
            count = len(self.source.splitlines())
            lines.append(f"  cell source: {count} lines (.source); .data holds the inputs")
        return "\n".join(lines)


def reproduce(settings: Settings, run_id: str) -> Reproduction:
    """Restore the run's input snapshots (verified) and read its cell source and params."""
    from mlflow.exceptions import MlflowException

    from ..snapshots import service

    client = mlflow_client(settings.tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise MLOpsUsageError(f"no run {run_id!r} in this store; see %runs for run ids") from None
    data: dict[str, Any] = {}
    ids: dict[str, str] = {}
    for entry in records.snapshot_inputs(run):
        try:
            data[entry.ref] = service.load(settings, entry.id, verify=True)
        except MLOpsUsageError:
            raise MLOpsUsageError(
                f"run {run_id} used snapshot {entry.ref} (id {entry.id[:12]}), which is not in "
                f"the snapshot store {settings.snapshot_store}; point snapshot_store at the "
                "store it was saved to"
            ) from None
        ids[entry.ref] = entry.id
    return Reproduction(
        run_id=run_id,
        run_name=run.info.run_name or run_id,
        experiment=client.get_experiment(run.info.experiment_id).name,
        source=records.artifact_text(client, run, names.CELL_ARTIFACT),
        params=dict(run.data.params),
        data=data,
        snapshot_ids=ids,
        notebook=run.data.tags.get(names.TAG_NOTEBOOK),
        batch_parameters=tuple(
            n for n in run.data.tags.get(names.TAG_BATCH_PARAMETERS, "").split(",") if n
        ),
    )
