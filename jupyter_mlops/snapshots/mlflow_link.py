"""Link a snapshot version to the open MLflow run as a dataset input, with our own digest.

MLflow's pandas digest reads only the first 10,000 rows and collides (and takes seconds on big
frames), so the dataset is logged as an entity carrying our content id; mlflow is imported only
when a run is actually open.
"""

from __future__ import annotations

import json
from typing import Any

from .. import records
from ..tracking.active import active_run
from .results import Snapshot

CONTEXT = records.INPUT_CONTEXT


def _schema(manifest: dict[str, Any]) -> str | None:
    columns = manifest.get("columns")
    if not columns:
        return None
    return json.dumps(
        {
            records.SCHEMA_COLUMNS: [
                {"name": c["label"], "type": c.get("pandas_dtype") or c["arrow_type"]}
                for c in columns
                if not c["index"]
            ]
        }
    )


def link_to_active_run(
    snapshot: Snapshot, manifest: dict[str, Any], source_url: str, operation: str
) -> str | None:
    """Log ``snapshot`` as an input of the active run; returns the run id, or None when none."""
    run = active_run()
    if run is None:
        return None
    from mlflow.entities import Dataset, DatasetInput, InputTag

    from ..tracking.client import mlflow_client

    content = manifest["content"]
    profile = {
        records.PROFILE_ROWS: snapshot.rows,
        records.PROFILE_ELEMENTS: (snapshot.rows or 0) * len(snapshot.columns),
    }
    if content["kind"] != "dataframe":
        profile = {records.PROFILE_FILES: snapshot.objects, records.PROFILE_BYTES: snapshot.bytes}
    dataset = Dataset(
        name=snapshot.ref,
        digest=records.mlflow_digest(snapshot.id),
        source_type="local" if source_url.startswith("file://") else source_url.split("://")[0],
        source=json.dumps({"uri": source_url}),
        schema=_schema(manifest),
        profile=json.dumps(profile),
    )
    tags = [
        InputTag("mlflow.data.context", CONTEXT),
        InputTag(records.INPUT_TAG_OPERATION, operation),
        InputTag(records.INPUT_TAG_REF, snapshot.ref),
        InputTag(records.INPUT_TAG_ID, snapshot.id),
    ]
    client = mlflow_client(run.tracking_uri)
    client.log_inputs(run.run_id, datasets=[DatasetInput(dataset, tags)])
    client.set_tag(
        run.run_id, records.run_snapshot_tag(snapshot.name), f"{snapshot.ref}#{snapshot.short_id}"
    )
    return run.run_id
