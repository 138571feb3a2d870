"""Metric values a process could not write in time, kept on disk until the store's next use.

Writing through MLflow's SQL store manages a few thousand values per second, and a kernel that
is shut down gets about 5 s between SIGTERM and SIGKILL. So on SIGTERM the values not yet
written go to one file beside the SQLite store (a fraction of a second for 100,000 values); the
next process that opens the store writes them into their run before anything else reads it.

A remote tracking server that stops answering while a run ends is the same case: the run's
unwritten values, its final tags and its status go to ``<home>/pending-metrics/<server>/``, and
the next run started on that server (or the next process) writes them and ends the run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

FOLDER = "pending-metrics"
BATCH_SIZE = 1000


def folder_for(db: Path | None) -> Path | None:
    return None if db is None else db.parent / FOLDER


def folder_for_server(home: Path, tracking_uri: str) -> Path:
    """One folder per remote server under ``home``: a replay never writes into another store."""
    return home / FOLDER / hashlib.blake2b(tracking_uri.encode(), digest_size=8).hexdigest()


def spill(
    folder: Path,
    run_id: str,
    rows: Sequence[tuple[str, float, int, int]],
    end: Mapping[str, object] | None = None,
) -> Path:
    """Write ``rows`` (key, value, timestamp ms, step) for ``run_id``; atomic.

    ``end`` (status, params, tags) is how the run ended when the store could not be told.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{run_id}-{os.getpid()}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({"run_id": run_id, "metrics": list(rows), "end": end}))
    os.replace(tmp, target)
    return target


def replay(client: MlflowClient, folder: Path | None) -> int:
    """Write every spilled value into its run; the number written."""
    if folder is None or not folder.is_dir():
        return 0
    from mlflow.entities import Metric, Param, RunTag

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
            end = data.get("end")
            if end:
                params = [Param(k, v) for k, v in end.get("params", {}).items()]
                tags = [RunTag(k, v) for k, v in end.get("tags", {}).items()]
                if params or tags:
                    client.log_batch(data["run_id"], params=params, tags=tags, synchronous=True)
                client.set_terminated(data["run_id"], end["status"])
        except BaseException:
            os.replace(claimed, path)  # left for the next opening
            raise
        claimed.unlink()
        written += len(rows)
    return written
