"""``mlops.log`` on every rank of a cell run inside ``%%track``.

The kernel passes its open run's id to the job; on each rank the cell runs with a stand-in for
that run at the top of the tracking stack, so ``mlops.log``, ``mlops.log_params`` and
``mlops.log_artifact`` work unchanged. Rank 0 writes to the run; other ranks are silent, so a
loop that logs on every rank records each value once, unless the cell calls
``mlops.distributed.log_every_rank()``: then rank N writes its metrics as ``KEY/rankN``.
The kernel owns the run, so the stand-in never ends it: it only writes what it buffered.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import MLOpsUsageError


class RankRun:
    """Where ``mlops.log`` goes on one rank; see the module docstring.

    ``tracking.run`` calls ``stack[-1].logger.log(step, metrics)``, so ``logger`` is this
    object itself and the rank rule stays in one place. The MLflow writer starts on the first
    value this rank actually records.
    """

    def __init__(self, rank: int, run_id: str, tracking_uri: str) -> None:
        from ..tracking import active
        from ..tracking.client import mlflow_client

        self.rank = rank
        self.run_id = run_id
        self.client = mlflow_client(tracking_uri)
        self.every_rank = False
        self.writer: Any = None
        self.handle = active.ActiveRun(run_id, tracking_uri)

    @property
    def logger(self) -> RankRun:
        return self

    def log(self, step: int | None, metrics: Mapping[str, Any]) -> None:
        if self.rank != 0:
            if not self.every_rank:
                return
            metrics = {f"{k}/rank{self.rank}": v for k, v in metrics.items()}
        if self.writer is None:
            from ..tracking.logger import MetricLogger
            from ..tracking.run import next_steps

            first = next_steps(self.client, self.client.get_run(self.run_id))
            self.writer = MetricLogger(self.client, self.run_id, first_steps=first)
        self.writer.log(step, metrics)

    def log_params(self, **params: Any) -> None:
        if self.rank == 0:
            from ..tracking.run import record_params

            record_params(self.client, self.run_id, params)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.rank == 0 or self.every_rank:
            local = Path(path)
            if local.is_dir():
                self.client.log_artifacts(self.run_id, str(local), artifact_path)
            else:
                self.client.log_artifact(self.run_id, str(local), artifact_path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


_current: list[RankRun] = []


@contextlib.contextmanager
def tracked_by_rank(rank: int, run_id: str | None, tracking_uri: str | None) -> Iterator[None]:
    """Run the body with ``mlops.log`` bound to the kernel's run (a no-op when untracked)."""
    if not run_id or not tracking_uri:
        yield
        return
    from ..tracking import active
    from ..tracking import run as tracking

    run = RankRun(rank, run_id, tracking_uri)
    active.push(run.handle)
    _current.append(run)
    try:
        with tracking.routed_to(run):
            yield
    finally:
        _current.remove(run)
        active.pop(run.handle)
        run.close()


def log_every_rank() -> None:
    """Inside a tracked ``%%distributed`` cell: every rank's ``mlops.log`` writes, as KEY/rankN."""
    if not _current:
        raise MLOpsUsageError(
            "log_every_rank() works inside a %%distributed cell run within a %%track run"
        )
    _current[-1].every_rank = True


def log_folder(folder: Path, artifact_path: str) -> bool:
    """Rank 0 of a tracked cell: ``folder`` as artifacts of the kernel's run (False: untracked)."""
    if not _current:
        return False
    run = _current[-1]
    run.client.log_artifacts(run.run_id, str(folder), artifact_path)
    return True
