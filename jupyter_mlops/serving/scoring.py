"""Batch scoring (``%score``): a model version over a DataFrame, a snapshot or a Parquet source.

The alias is resolved once, when scoring starts: a promotion meanwhile does not mix two versions'
predictions. The work runs in a child process (``score_worker``), never in the kernel: in its own
session, killed when the kernel dies, stopped by a Ctrl-C. The kernel only holds the MLflow run
open (so a killed scorer ends it FAILED, never RUNNING), shows progress and, for data in its
memory, streams it to the scorer as Arrow. The scorer saves the predictions (the input's key
columns and index, then ``prediction``) as a snapshot linked to the run, which also records the
data it loaded; the run's tags name the model version, so ``%lineage`` links data -> model
version -> predictions.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import IO, Any

from .. import records
from ..config import Settings
from ..distributed.procs import stop
from ..errors import MLOpsError, MLOpsUsageError
from ..snapshots.results import Snapshot
from . import score_sources

DEFAULT_BATCH_ROWS = 10_000
WORKER = "jupyter_mlops.serving.score_worker"
LOG_TAIL = 2_000


class ScoringFailed(MLOpsError):
    """The scoring process failed or was killed; no predictions version was published."""


def score(
    settings: Settings,
    model: str,
    data: Any,
    *,
    name: str | None = None,
    keys: Sequence[str] = (),
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[int, int | None], None] | None = None,
) -> Snapshot:
    """Score ``data`` with the version ``model`` (``NAME@ALIAS``, ``NAME/VERSION``) names now.

    Returns the predictions snapshot (default name ``<model>-predictions``). ``progress`` is
    called with (rows done, rows in all or None); by default a progress bar shows.
    """
    from ..registry.models import resolve_version
    from ..snapshots.names import check_name
    from ..tracking.client import mlflow_client
    from ..tracking.run import start

    if batch_rows < 1:
        raise MLOpsUsageError(f"--batch-rows must be 1 or more, not {batch_rows}")
    version = resolve_version(mlflow_client(settings.tracking_uri), model)
    pinned = f"{version.name}/{version.version}"
    source = score_sources.describe(settings, data)
    name = check_name(name or f"{version.name}-predictions")
    check_columns(settings, version, source, keys)
    params = {
        "model": version.name,
        "version": int(version.version),
        "model_ref": model,
        "data": source.label,
        "batch_rows": batch_rows,
    }
    tags = {records.TAG_SCORE_MODEL: pinned, records.TAG_SCORE_DATA: source.label}
    with (
        start(
            f"score {model}", experiment=settings.experiment, params=params, tags=tags, policy="new"
        ) as run,
        _reporter(progress, f"score {model}", source.rows) as report,
    ):
        spec = {
            "settings": _settings_json(settings),
            "run_id": run.run_id,
            "model": pinned,
            "model_uri": f"models:/{version.name}/{version.version}",
            "name": name,
            "message": f"predictions of {pinned} ({model}) for {source.label}",
            "keys": list(keys),
            "batch_rows": batch_rows,
            "source": {"kind": source.kind, "spec": source.spec},
        }
        done = _run_worker(settings, spec, source, report, model)
        rows, seconds = int(done["rows"]), float(done["seconds"])
        run.log(rows=rows, rows_per_s=rows / seconds if seconds > 0 else 0.0)
    return Snapshot(**done["snapshot"])


def check_columns(
    settings: Settings, version: Any, source: score_sources.Source, keys: Sequence[str]
) -> None:
    """Refuse data without the model's inputs or the ``keys`` before any process or run starts.

    The inputs are read from the version's MLmodel file (its signature); a model without one
    is checked by the scorer, as the model reads the data.
    """
    inputs = input_names(settings, version)
    missing = [c for c in dict.fromkeys([*inputs, *keys]) if c not in source.columns]
    if missing:
        raise MLOpsUsageError(
            f"{source.label} has no column {', '.join(map(repr, missing))} "
            f"(it has: {', '.join(source.columns)}); {version.name}/{version.version} reads "
            f"{', '.join(inputs) or 'its whole input'}"
            + (f" and --key names {', '.join(keys)}" if keys else "")
        )


def input_names(settings: Settings, version: Any) -> list[str]:
    """The column names the version's signature asks for ([] without a named signature)."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    from ..tracking.client import mlflow_client

    client = mlflow_client(settings.tracking_uri)
    location = client.get_model_version_download_uri(version.name, version.version)
    try:
        local = download_artifacts(
            artifact_uri=f"{location.rstrip('/')}/MLmodel", tracking_uri=settings.tracking_uri
        )
        return score_sources.named_inputs(Model.load(local).get_input_schema())
    except (MlflowException, OSError):
        return []


def _settings_json(settings: Settings) -> dict[str, Any]:
    values = asdict(settings)
    values["home"] = str(settings.home)
    values["notebook"] = str(settings.notebook) if settings.notebook else None
    values["sources"] = dict(settings.sources)
    return values


@contextlib.contextmanager
def _reporter(
    given: Callable[[int, int | None], None] | None, description: str, total: int | None
) -> Iterator[Callable[[int, int | None], None]]:
    """The caller's progress callback, else a progress bar from the model's load on.

    Text on stderr, not a widget: its last state is what a notebook run by nbconvert or
    papermill keeps (a widget's text form would stay as it was when first shown).
    """
    if given is not None:
        yield given
        return
    from tqdm import tqdm

    bars: list[Any] = []

    def report(done: int, _total: int | None) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc=description, unit="row", file=sys.stderr))
        bars[0].update(done - bars[0].n)

    try:
        yield report
    finally:
        for bar in bars:
            bar.close()


def _run_worker(
    settings: Settings,
    spec: dict[str, Any],
    source: score_sources.Source,
    report: Callable[[int, int | None], None],
    model: str,
) -> dict[str, Any]:
    """Run the scoring process to its end; its ``done`` event, or ScoringFailed saying why."""
    marker = f"mlops-score-{uuid.uuid4().hex}"
    with tempfile.TemporaryFile() as log:
        code, events = _watch(settings, spec, source, report, marker, log)
        tail = _tail(log)
    if "done" in events and code == 0:
        return events["done"]
    rows = int(events.get("progress", {}).get("rows", 0))
    of = f" of {source.rows:,}" if source.rows is not None else ""
    if "error" in events:
        why = events["error"]["message"]
    elif code < 0:
        why = f"the scoring process was killed by {signal.Signals(-code).name}"
    else:
        why = f"the scoring process exited with code {code}: {tail or 'no output'}"
    raise ScoringFailed(
        f"scoring {model} failed after {rows:,}{of} rows: {why}; "
        "no predictions were saved; fix the cause and run %score again"
    )


def _watch(
    settings: Settings,
    spec: dict[str, Any],
    source: score_sources.Source,
    report: Callable[[int, int | None], None],
    marker: str,
    log: IO[bytes],
) -> tuple[int, dict[str, dict[str, Any]]]:
    """Start the scorer, follow its events until it exits; (exit code, last event of each kind).

    Any exit from the wait (a Ctrl-C, an error here) stops the scorer's process group first.
    """
    read_fd, write_fd = os.pipe()
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri}
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                WORKER,
                json.dumps({**spec, "events_fd": write_fd, "kernel_pid": os.getpid()}),
                marker,
            ],
            stdin=subprocess.PIPE if source.feed else subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            start_new_session=True,  # a Ctrl-C to the kernel's group is ours to pass on
            env=env,
        )
    finally:
        os.close(write_fd)
    feeder = _start_feeder(source, process.stdin)
    events: dict[str, dict[str, Any]] = {}
    try:
        for event in _events(read_fd):
            events[event["event"]] = event
            if event["event"] in ("loaded", "progress"):
                report(int(event.get("rows", 0)), source.rows)
        return process.wait(), events
    except BaseException:
        stop(lambda: [process.pid], marker)
        raise
    finally:
        os.close(read_fd)
        if feeder is not None:
            feeder.join(timeout=5)
        process.wait()


def _start_feeder(source: score_sources.Source, stdin: IO[bytes] | None) -> threading.Thread | None:
    """Stream in-memory data to the scorer from a thread (the kernel keeps reading events)."""
    if source.feed is None or stdin is None:
        return None
    feed = source.feed

    def run() -> None:
        try:
            feed(stdin)
        except (BrokenPipeError, OSError):  # the scorer stopped reading: its events say why
            pass
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    thread = threading.Thread(target=run, name="mlops-score-feed", daemon=True)
    thread.start()
    return thread


def _events(fd: int) -> Any:
    """The JSON events the scorer writes, until it closes the pipe (exits).

    ``select`` with a short timeout keeps a Ctrl-C in the kernel responsive.
    """
    buffered = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError):
                yield json.loads(line)


def _tail(log: IO[bytes]) -> str:
    log.seek(0, os.SEEK_END)
    size = log.tell()
    log.seek(max(0, size - LOG_TAIL))
    lines = log.read().decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else ""
