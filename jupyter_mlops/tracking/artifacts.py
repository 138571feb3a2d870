"""Reading a run's artifacts: in place for local stores, through MLflow otherwise.

MLflow's artifact API costs tens of milliseconds per call and draws a progress bar per download,
so local artifact folders are read directly.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


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
    with tempfile.TemporaryDirectory(prefix="mlops-artifacts-") as tmp, no_progress_bars():
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
