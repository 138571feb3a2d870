"""Routes the panel uses to choose what it shows: the store's experiments, a run's files.

``GET experiments`` lists the experiments of the store (for the experiment selector);
``GET runs/<id>/artifact?file=<path>`` reads one small text artifact of a run (a failed run's
``error.txt``, its ``cell.py``, a logged JSON), so a failure can be read from its detail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import tornado.web

from ..config import Settings
from ..errors import MLOpsUsageError
from .handlers import NAME, MLOpsHandler
from .queries import _artifact_text, _artifacts, _get_run, client_for

MAX_ARTIFACT_BYTES = 256 * 1024


@dataclass(frozen=True)
class ExperimentInfo:
    name: str
    last_update_time: int | None  # ms since the epoch


@dataclass(frozen=True)
class ExperimentList:
    """``GET experiments``: the shown experiment first, then the store's, newest first."""

    current: str
    experiments: list[ExperimentInfo]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArtifactText:
    """``GET runs/<id>/artifact``: one artifact's text, or why it is not shown."""

    run_id: str
    path: str
    size: int | None
    text: str | None
    note: str | None  # set when text is None: binary, or too large to show

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def experiment_list(settings: Settings) -> ExperimentList:
    client = client_for(settings)
    found = client.search_experiments(max_results=1000) if client is not None else []
    found = sorted(found, key=lambda e: -(e.last_update_time or 0))
    infos = [ExperimentInfo(e.name, e.last_update_time) for e in found]
    if settings.experiment not in {e.name for e in infos}:
        infos.insert(0, ExperimentInfo(settings.experiment, None))  # created on its first run
    return ExperimentList(settings.experiment, infos)


def artifact_text(settings: Settings, run_id: str, path: str) -> ArtifactText:
    client = client_for(settings)
    run = _get_run(client, run_id)
    assert client is not None
    if path not in _artifacts(client, run_id):  # only listed files: no path leaves the run
        raise MLOpsUsageError(f"run {run.info.run_id[:8]} has no artifact {path[:200]!r}")
    folder = path.rpartition("/")[0] or None
    size = next(
        (e.file_size for e in client.list_artifacts(run_id, folder) if e.path == path), None
    )
    if size is not None and size > MAX_ARTIFACT_BYTES:
        note = f"{size:,} bytes: too large to show here; use mlflow.artifacts.download_artifacts"
        return ArtifactText(run_id, path, size, None, note)
    try:
        text = _artifact_text(client, run_id, path)
    except UnicodeDecodeError:
        return ArtifactText(run_id, path, size, None, "binary file: not shown as text")
    return ArtifactText(run_id, path, size, text, None)


class ExperimentsHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        settings, _ = self.store_settings(self.get_argument("experiment", None))
        self.send((await self.call(experiment_list, settings)).to_json())


class RunArtifactHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        settings, _ = self.store_settings()
        path = self.get_argument("file", "")
        self.send((await self.call(artifact_text, settings, run_id, path)).to_json())


ROUTES: list[tuple[str, type[MLOpsHandler]]] = [
    ("experiments", ExperimentsHandler),
    (f"runs/{NAME}/artifact", RunArtifactHandler),
]
