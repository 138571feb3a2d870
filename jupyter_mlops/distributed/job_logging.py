"""A finished job on the active ``%%track`` run: its parameters, every rank's log, its errors."""

from __future__ import annotations

import warnings

from .job import CELL_FILE, Job


def log_to_run(job: Job, run_id: str, tracking_uri: str) -> None:
    """Job parameters and per-rank logs on the run; a failure to log is a warning, not an error."""
    from ..tracking.client import mlflow_client

    try:
        client = mlflow_client(tracking_uri)
        existing = client.get_run(run_id).data.params
        params = {
            "distributed.world_size": str(job.spec.world_size),
            "distributed.nnodes": str(job.spec.nnodes),
            "distributed.backend": job.spec.backend,
            "distributed.executor": job.spec.executor,
        }
        for key, value in params.items():
            if key not in existing:  # a second job in the same run keeps the first job's params
                client.log_param(run_id, key, value)
        artifact_path = f"distributed/{job.id}"
        client.log_artifacts(run_id, str(job.logs_dir), artifact_path)
        if any(job.errors_dir.iterdir()):
            client.log_artifacts(run_id, str(job.errors_dir), f"{artifact_path}/errors")
        client.log_artifact(run_id, str(job.dir / CELL_FILE), artifact_path)
    except Exception as exc:
        warnings.warn(f"could not log job {job.id} to MLflow run {run_id}: {exc}", stacklevel=2)
