"""A finished job on the active ``%%track`` run: its parameters, every rank's log, its errors,
and each rank's step time and peak memory as metrics."""

from __future__ import annotations

import warnings
from typing import Any

from .job import CELL_FILE, Job
from .stats import read_stats


def log_rank_stats(client: Any, run_id: str, job: Job) -> None:
    """Each rank's mean step time and peak memory as metrics ``distributed.rankN.*``.

    The step of each value is the number of steps the rank marked.
    """
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = []
    for stats in read_stats(job.dir):
        prefix = f"distributed.rank{stats.rank}"
        metrics.append(Metric(f"{prefix}.memory_mb", stats.memory_mb, now, stats.steps))
        if stats.step_s_mean is not None:
            metrics.append(Metric(f"{prefix}.step_time_s", stats.step_s_mean, now, stats.steps))
    if metrics:
        client.log_batch(run_id, metrics=metrics)


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
        log_rank_stats(client, run_id, job)
    except Exception as exc:
        warnings.warn(f"could not log job {job.id} to MLflow run {run_id}: {exc}", stacklevel=2)
