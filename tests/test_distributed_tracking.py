"""``mlops.log`` on every rank of a ``%%distributed`` cell inside a tracked run (real torchrun)."""

from __future__ import annotations

import pytest

import jupyter_mlops as mlops
from jupyter_mlops.tracking.client import mlflow_client

CELL = """
import jupyter_mlops as mlops
for step in range(3):
    mlops.log(loss=10 * rank + step)  # rank 0 only: one value per step, not one per rank
mlops.log_params(world=world_size)
mlops.distributed.log_every_rank()
mlops.log(step=0, acc=0.5 + rank)
"""


def test_every_rank_logs_to_the_notebooks_run() -> None:
    with mlops.track("ddp", params={"lr": 0.1}) as run:
        mlops.log(step=0, kernel_side=1.0)
        mlops.distributed.run(CELL, n=2, sink=lambda line: None)
    client = mlflow_client(run.tracking_uri)
    finished = client.get_run(run.run_id)
    assert finished.info.status == "FINISHED"  # the ranks wrote to the run, never ended it
    assert finished.data.params["world"] == "2" and finished.data.params["lr"] == "0.1"

    def history(key: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in client.get_metric_history(run.run_id, key))

    assert history("loss") == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert history("acc") == [(0, 0.5)]
    assert history("acc/rank1") == [(0, 1.5)]
    # Each rank's peak memory comes along; a step time only once the cell marks steps.
    ranks = {"distributed.rank0.memory_mb", "distributed.rank1.memory_mb"}
    assert set(finished.data.metrics) == {"kernel_side", "loss", "acc", "acc/rank1", *ranks}


def test_log_every_rank_outside_a_tracked_cell_is_a_usage_error() -> None:
    with pytest.raises(mlops.MLOpsUsageError, match="inside a %%distributed cell"):
        mlops.distributed.log_every_rank()
