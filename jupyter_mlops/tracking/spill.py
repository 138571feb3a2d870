"""Metric values a terminating process could not write in time, kept on disk until next use.

Writing through MLflow's SQL store manages a few thousand values per second, and a kernel that
is shut down gets about 5 s between SIGTERM and SIGKILL. So on SIGTERM the values not yet
written go to one file beside the SQLite store (a fraction of a second for 100,000 values); the
next process that opens the store writes them into their run before anything else reads it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

FOLDER = "pending-metrics"
BATCH_SIZE = 1000


def folder_for(db: Path | None) -> Path | None:
    return None if db is None else db.parent / FOLDER


def spill(folder: Path, run_id: str, rows: Sequence[tuple[str, float, int, int]]) -> Path:
    """Write ``rows`` (key, value, timestamp ms, step) for ``run_id``; atomic."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{run_id}-{os.getpid()}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({"run_id": run_id, "metrics": list(rows)}))
    os.replace(tmp, target)
    return target


def replay(client: MlflowClient, folder: Path | None) -> int:
    """Write every spilled value into its run; the number written."""
    if folder is None or not folder.is_dir():
        return 0
    from mlflow.entities import Metric

    written = 0
    for path in sorted(folder.glob("*.json")):
        claimed = path.with_name(f"{path.name}.replaying-{os.getpid()}")
        try:
            os.replace(path, claimed)  # one process replays each file
        except FileNotFoundError:
            continue
        try:
            data: dict[str, Any] = json.loads(claimed.read_text())
            rows = data["metrics"]
            for start in range(0, len(rows), BATCH_SIZE):
                chunk = [Metric(k, v, ts, s) for k, v, ts, s in rows[start : start + BATCH_SIZE]]
                client.log_batch(data["run_id"], metrics=chunk, synchronous=True)
        except BaseException:
            os.replace(claimed, path)  # left for the next opening
            raise
        claimed.unlink()
        written += len(rows)
    return written
