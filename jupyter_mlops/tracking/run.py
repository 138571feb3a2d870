"""The lifecycle of a tracked run: open it in the right experiment, record, always close it.

A run opened here always ends: FINISHED, FAILED (with the exception text) or KILLED on
KeyboardInterrupt. Only runs opened here are ended here; a run the user opened with
``mlflow.start_run()`` becomes the parent of ours and stays open. Re-running a cell follows a
policy keyed on (notebook, cell id, run name, ordinal within the cell):

- ``new``: always a new run;
- ``replace``: a new run, and the previous run of the same key is tagged as superseded
  (kept, hidden from ``%runs`` by default);
- ``resume``: reopen the previous run of the key and continue its step counters;
- ``auto``: ``replace`` interactively, ``new`` in batch (nbconvert, papermill, scripts), so a
  CI history keeps every execution.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import records
from ..context import current_notebook, current_settings, user_namespace
from ..errors import MLOpsUsageError
from . import active, context, fluent, remote, spill, termination
from .client import (
    ARTIFACTS_DIRNAME,
    interrupt_afterwards,
    is_local_store,
    mlflow_client,
    sqlite_path,
)
from .logger import MetricLogger, MetricSeries
from .owner import owner_tags
from .store import say

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

POLICIES = ("auto", "new", "replace", "resume")
BATCH_SOURCES = frozenset(
    {"papermill", "nbconvert", "jupyter-execute", "pytest", "py.test", "nbclient"}
)
TAG_KEY = records.TAG_RUN_KEY
TAG_SUPERSEDED = records.TAG_SUPERSEDED_BY
TAG_REPLACES = records.TAG_REPLACES
TAG_ERROR = records.TAG_ERROR
CELL_ARTIFACT = records.CELL_ARTIFACT
ERROR_ARTIFACT = records.ERROR_ARTIFACT


@dataclass
class CellInfo:
    """The cell now executing, as the IPython face reports it (pre_run_cell)."""

    cell_id: str | None = None
    source: str = ""
    ordinal: int = 0  # tracked runs opened so far in this execution
    code: str = ""  # the Python IPython runs (magics transformed): what names it assigns


_cell = CellInfo()
_open: list[TrackedRun] = []
_last: list[RunSummary] = []


@atexit.register
def _end_at_exit() -> None:
    """Runs opened with ``mlops.track()`` and never ended are flushed and ended at exit."""
    for run in reversed(list(_open)):
        # After a SIGTERM, SIGKILL follows soon: keep what is unwritten on disk instead.
        run.logger.terminated = termination.requested.is_set()
        with contextlib.suppress(Exception):  # nothing is left to report to at exit
            run.end()


def note_cell(cell_id: str | None, source: str, code: str = "") -> None:
    """Called by the IPython face before every cell executes (``code``: its transformed form)."""
    global _cell
    _cell = CellInfo(cell_id, source, code=code)


def is_interactive() -> bool:
    """A person at a kernel (not nbconvert, papermill, pytest or a script)."""
    return current_notebook().source not in BATCH_SOURCES and bool(user_namespace())


def current() -> TrackedRun:
    if not _open:
        raise MLOpsUsageError(
            "no tracked run is active; put the code in a %%track cell or inside "
            "`with mlops.track(...):`"
        )
    return _open[-1]


def log_metrics(step: int | None, metrics: Mapping[str, Any]) -> None:
    """``mlops.log``: called every training step, so it does no more than it must."""
    if not _open:
        current()  # raises the usage error
    _open[-1].logger.log(step, metrics)


def last_run() -> RunSummary | None:
    """The summary of the most recently ended tracked run of this process."""
    return _last[-1] if _last else None


@dataclass(frozen=True)
class RunSummary:
    """What a tracked run recorded; shown under the cell (text form has no ids or times)."""

    run_id: str
    name: str
    experiment: str
    status: str
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, MetricSeries] = field(default_factory=dict)
    error: str | None = None
    policy: str = "new"  # what happened: new, replace, resume
    replaced: str | None = None
    duration_s: float = 0.0

    def __repr__(self) -> str:
        what = {"replace": " (replaces the previous run of this cell)", "resume": " (resumed)"}
        lines = [
            f"run {self.name!r} {self.status} in experiment {self.experiment!r}"
            f"{what.get(self.policy, '')}"
        ]
        if self.error:
            lines.append(f"  error: {self.error.splitlines()[-1] if self.error else ''}")
        for key, value in self.params.items():
            lines.append(f"  param  {key} = {value}")
        for key, series in self.metrics.items():
            lines.append(
                f"  metric {key} = {series.last_value:.6g} at step {series.last_step} "
                f"({series.count} values)"
            )
        return "\n".join(lines)


def run_key(notebook: Path | None, cell: CellInfo, name: str | None) -> str | None:
    """Identity of 'this run of this cell' across re-executions (None: nothing to match)."""
    if cell.cell_id is None and name is None and not cell.source:
        return None
    where = cell.cell_id or hashlib.sha1(cell.source.encode()).hexdigest()
    raw = f"{notebook or ''}\0{where}\0{name or ''}\0{cell.ordinal}"
    return hashlib.sha1(raw.encode()).hexdigest()[:24]


def experiment_id(client: MlflowClient, name: str, home: Path, tracking_uri: str) -> str:
    """Find or create the experiment; local stores keep its artifacts under ``<home>``."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise MLOpsUsageError(
                f"experiment {name!r} is deleted; restore it or use --experiment with another name"
            )
        return str(found.experiment_id)
    location = None
    if is_local_store(tracking_uri):
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "experiment"
        location = (home / ARTIFACTS_DIRNAME / slug).as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:
        again = client.get_experiment_by_name(name)  # created meanwhile by another kernel
        if again is None:
            raise
        return str(again.experiment_id)


def previous_run(client: MlflowClient, exp_id: str, key: str) -> Any:
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{TAG_KEY}` = '{key}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def next_steps(client: MlflowClient, run: Any) -> dict[str, int]:
    steps = {}
    for key in run.data.metrics:
        history = client.get_metric_history(run.info.run_id, key)
        steps[key] = max((m.step for m in history), default=-1) + 1
    return steps


def _log_batch(
    client: MlflowClient, run_id: str, params: Mapping[str, str], tags: Mapping[str, str]
) -> None:
    from mlflow.entities import Param, RunTag
    from mlflow.exceptions import MlflowException

    try:
        client.log_batch(
            run_id,
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
            synchronous=True,
        )
    except MlflowException as exc:
        if exc.error_code == "INVALID_PARAMETER_VALUE" and params:
            first = str(exc.message).splitlines()[0]
            raise MLOpsUsageError(
                f"MLflow refused the params ({first}); a run's params cannot change: "
                "start a new run (--policy new) instead of resuming"
            ) from None
        raise


def record_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> dict[str, str]:
    """Write ``params`` to a run as ``mlops.log_params`` does; returns them as recorded."""
    rendered = {}
    for key, value in params.items():
        try:
            rendered[key] = context.render_param(value)
        except MLOpsUsageError as exc:
            raise MLOpsUsageError(f"param {key!r}: {exc}") from None
    _log_batch(client, run_id, rendered, {})
    return rendered


@contextlib.contextmanager
def routed_to(sink: Any) -> Iterator[None]:
    """While the block runs, ``mlops.log``, ``log_params`` and ``log_artifact`` of this process
    go to ``sink`` (an object with ``logger.log``, ``log_params`` and ``log_artifact``): how a
    ``%%distributed`` rank writes into the kernel's run."""
    _open.append(sink)
    try:
        yield
    finally:
        _open.remove(sink)


class TrackedRun:
    """An MLflow run opened by jupyter-mlops; a context manager that always ends it."""

    def __init__(
        self,
        client: MlflowClient,
        run_id: str,
        *,
        name: str,
        experiment: str,
        tracking_uri: str,
        policy: str,
        replaced: str | None,
        first_steps: Mapping[str, int],
        params: Mapping[str, str],
        later_params: Sequence[str] = (),
        namespace: Mapping[str, Any] | None = None,
        fluent_state: fluent.FluentState | None = None,
        home: Path | None = None,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.name = name
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self.policy = policy
        self.replaced = replaced
        self.params = dict(params)
        self.later_params = list(later_params)
        self.namespace = namespace
        self.logger = MetricLogger(
            client,
            run_id,
            first_steps=first_steps,
            spill_folder=spill_folder(tracking_uri, home),
            tracking_uri=tracking_uri,
        )
        self.status = "RUNNING"
        self.error: str | None = None
        self.started = time.monotonic()
        self.on_end: Callable[[RunSummary], None] | None = None  # e.g. the final chart
        self._handle = active.ActiveRun(run_id, tracking_uri)
        self._fluent = fluent_state  # MLflow's fluent API sees this run until it ends
        self._ended = threading.Event()
        active.push(self._handle)
        _open.append(self)
        termination.guard()

    # --- what the cell calls -------------------------------------------------------------
    def log(self, step: int | None = None, **metrics: Any) -> None:
        self.logger.log(step, metrics)

    def log_params(self, **params: Any) -> None:
        with remote.bounded(self.tracking_uri):
            self.params.update(record_params(self.client, self.run_id, params))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        local = Path(path)
        if not local.exists():
            raise MLOpsUsageError(f"log_artifact: {local} does not exist; pass a file or folder")
        with remote.bounded(self.tracking_uri):
            if local.is_dir():
                self.client.log_artifacts(self.run_id, str(local), artifact_path)
            else:
                self.client.log_artifact(self.run_id, str(local), artifact_path)

    def set_live_view(self, callback: Callable[[], None] | None) -> None:
        self.logger.on_log = callback

    def summary(self) -> RunSummary:
        return RunSummary(
            run_id=self.run_id,
            name=self.name,
            experiment=self.experiment,
            status=self.status,
            params=dict(self.params),
            metrics=self.logger.history(),
            error=self.error,
            policy=self.policy,
            replaced=self.replaced,
            duration_s=time.monotonic() - self.started,
        )

    # --- the end ---------------------------------------------------------------------------
    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            fluent.release_sessions(exc, self.tracking_uri)
        self.end(exc)

    def end(self, exc: BaseException | None = None) -> RunSummary:
        """Write what is buffered and set the final status; safe to call twice."""
        if self._ended.is_set():
            return self.summary()
        self._ended.set()
        if exc is None:
            status = "FINISHED"
        elif isinstance(exc, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        failure: BaseException | None = None
        abandoned: KeyboardInterrupt | None = None
        if isinstance(exc, termination.Terminated):
            self.logger.terminated = True  # no time to write everything: keep it on disk
        gone: remote.TrackingServerUnavailable | None = None
        tags: dict[str, str] = {}
        later: dict[str, str] = {}
        try:
            try:
                self.logger.close()
            except KeyboardInterrupt as again:  # a second Ctrl-C while flushing: stop there
                abandoned = again
            except remote.TrackingServerUnavailable as silent:  # values kept, status as is
                gone = silent
            except Exception as flush_error:
                failure = flush_error
                status = "FAILED" if exc is None else status
            stopped = abandoned is not None or self.logger.interrupted or self.logger.terminated
            if stopped and exc is None:
                status = "KILLED"
                how = "terminated" if self.logger.terminated else "interrupted"
                self.error = (
                    f"{how} while writing its metric values "
                    f"({self.logger.written} written before the run ended)"
                )
                tags[TAG_ERROR] = self.error
            if exc is not None:
                self.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                tags[TAG_ERROR] = context.clip(self.error or type(exc).__name__)
            if self.later_params and self.namespace is not None:
                # A failed cell may not have assigned them all: record those it did.
                later = context.read_params(
                    self.later_params, self.namespace, skip_missing=exc is not None
                )
                self.params.update(later)
            with remote.bounded(self.tracking_uri):
                if exc is not None and gone is None:
                    self.client.log_text(
                        self.run_id,
                        "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
                        ERROR_ARTIFACT,
                    )
                if (tags or later) and gone is None:
                    _log_batch(self.client, self.run_id, later, tags)
        except remote.TrackingServerUnavailable as silent:
            gone = silent
        except Exception as record_error:
            failure = failure or record_error
            status = "FAILED" if exc is None else status
        finally:
            self.status = status
            try:
                if gone is None:
                    try:
                        with remote.bounded(self.tracking_uri):
                            self.client.set_terminated(self.run_id, status)
                    except remote.TrackingServerUnavailable as silent:
                        gone = silent
                if gone is not None:
                    failure = self._keep_end(gone, tags, later)
                    if exc is not None:  # the cell's own error is what it raises
                        say(str(failure))
            finally:
                active.pop(self._handle)
                if self in _open:
                    _open.remove(self)
                if not _open:
                    termination.release()
                if self._fluent is not None:
                    fluent.detach(self._fluent)
        if failure is not None and self.error is None:
            self.error = f"{type(failure).__name__}: {failure}"
        summary = self.summary()
        _last[:] = [summary]
        if self.on_end is not None:
            self.on_end(summary)
        if self.logger.terminated:  # a SIGTERM, held while this run ended
            if _open:
                raise termination.Terminated("SIGTERM: the process is being shut down")
            termination.resend()
        if abandoned is not None or (self.logger.interrupted and exc is None):
            raise abandoned or KeyboardInterrupt()
        if failure is not None and exc is None:
            raise failure
        return summary

    def _keep_end(
        self,
        gone: remote.TrackingServerUnavailable,
        tags: Mapping[str, str],
        later: Mapping[str, str],
    ) -> remote.TrackingServerUnavailable:
        """The server stopped answering: keep the values and the end on disk, say where."""
        left = self.logger._left()
        kept = self.logger.keep({"status": self.status, "params": dict(later), "tags": dict(tags)})
        where = (
            f"{left:,} metric values and its end ({self.status}) are kept in {kept} and "
            "written when the next run starts on this server"
            if kept is not None
            else "its unwritten values are lost"
        )
        return remote.TrackingServerUnavailable(f"{gone}; run {self.run_id[:8]}: {where}")


def spill_folder(tracking_uri: str, home: Path | None) -> Path | None:
    """Where unwritten values of a run go when the store cannot take them in time."""
    db = sqlite_path(tracking_uri)
    if db is not None:
        return spill.folder_for(db)
    if remote.is_remote(tracking_uri) and home is not None:
        return spill.folder_for_server(home, tracking_uri)
    return None


def start(
    name: str | None = None,
    *,
    experiment: str | None = None,
    params: Mapping[str, Any] | None = None,
    param_names: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    policy: str = "auto",
    source: str | None = None,
    namespace: Mapping[str, Any] | None = None,
    code: str | None = None,
) -> TrackedRun:
    """Open a run (see the module docstring for the policies); use it as a context manager.

    ``params`` are values given directly; ``param_names`` name variables of ``namespace``
    (names the cell itself assigns are read when it ends). ``source`` is the cell as written,
    ``code`` the Python it runs (IPython's transformed cell), searched for assigned names.
    While the run is open, MLflow's fluent API (``mlflow.log_metric``, autologging) uses it.
    """
    if policy not in POLICIES:
        raise MLOpsUsageError(
            f"--policy {policy!r} is not valid; choose one of: {', '.join(POLICIES)}"
        )
    namespace = user_namespace() if namespace is None else namespace
    cell = _cell
    code_as_written = cell.source if source is None else source
    if code is None:
        code = (cell.code or cell.source) if source is None else source
    now_names, later_names = context.check_param_names(param_names, namespace, code)
    recorded = context.read_params(now_names, namespace)
    for param, value in (params or {}).items():
        try:
            recorded[param] = context.render_param(value)
        except MLOpsUsageError as exc:
            raise MLOpsUsageError(f"param {param!r}: {exc}") from None

    settings = current_settings({"experiment": experiment})
    notebook = current_notebook()
    with remote.bounded(settings.tracking_uri):  # a silent server: one error, in seconds
        client = mlflow_client(settings.tracking_uri)
        if remote.is_remote(settings.tracking_uri):  # what an earlier silence left on disk
            spill.replay(client, spill_folder(settings.tracking_uri, settings.home))
        exp_id = experiment_id(client, settings.experiment, settings.home, settings.tracking_uri)

        cell_id = cell.cell_id
        if cell_id is None and notebook.path is not None and cell.source:
            cell_id = context.cell_id_in_notebook(notebook.path, cell.source)
        key = run_key(notebook.path, CellInfo(cell_id, code_as_written, cell.ordinal), name)
        cell.ordinal += 1
        if policy == "auto":
            policy = "replace" if is_interactive() else "new"
        previous = previous_run(client, exp_id, key) if key and policy != "new" else None
        outer = active.active_run()

        first_steps: dict[str, int] = {}
        replaced = None
        status_if_aborted = "FAILED"
        fluent_state = None
        opened = None
        # From the moment a run exists, any exception (a Ctrl-C included) ends it: a run left
        # RUNNING by a live kernel would never be swept as a dead owner's.
        try:
            if policy == "resume" and previous is not None:
                status_if_aborted = previous.info.status
                opened = previous
                run_id = previous.info.run_id
                run_name: str = previous.info.run_name or run_id
                client.update_run(run_id, status="RUNNING")
                first_steps = next_steps(client, previous)
            else:
                if policy == "resume":
                    policy = "new"  # nothing to resume yet
                # A Ctrl-C inside create_run would leave a RUNNING run whose id we never learn.
                with interrupt_afterwards("the run is created"):
                    opened = client.create_run(exp_id, run_name=name, tags=owner_tags())
                run_id = opened.info.run_id
                run_name = opened.info.run_name or run_id
                if policy == "replace" and previous is not None:
                    replaced = previous.info.run_id
                    client.set_tag(replaced, TAG_SUPERSEDED, run_id)
                elif policy == "replace":
                    policy = "new"

            all_tags = {
                **owner_tags(),
                **context.user_tags(),
                **context.environment_tags(),
                **context.source_tags(notebook.path, notebook.source, cell_id),
                **context.git_state(notebook.path.parent if notebook.path else Path.cwd()),
                **(tags or {}),
            }
            if key:
                all_tags[TAG_KEY] = key
            if replaced:
                all_tags[TAG_REPLACES] = replaced
            if (
                outer is not None
                and outer.tracking_uri == settings.tracking_uri
                and outer.run_id != run_id
            ):
                all_tags["mlflow.parentRunId"] = outer.run_id
            _log_batch(client, run_id, recorded, all_tags)
            if code_as_written:
                client.log_text(run_id, code_as_written, CELL_ARTIFACT)
            fluent_state = fluent.attach(opened, settings.tracking_uri)
            return TrackedRun(
                client,
                run_id,
                name=run_name,
                experiment=settings.experiment,
                tracking_uri=settings.tracking_uri,
                policy=policy,
                replaced=replaced,
                first_steps=first_steps,
                params=recorded,
                later_params=later_names,
                namespace=namespace,
                fluent_state=fluent_state,
                home=settings.home,
            )
        except BaseException as exc:
            if opened is None:
                raise
            if isinstance(exc, KeyboardInterrupt) and opened is not previous:
                status_if_aborted = "KILLED"
            _abandon(client, opened.info.run_id, fluent_state, exc, status_if_aborted)
            raise


def _abandon(
    client: MlflowClient,
    run_id: str,
    fluent_state: fluent.FluentState | None,
    exc: BaseException,
    status: str,
) -> None:
    """Undo an opening that an error or a Ctrl-C cut short: nothing of the run stays open."""
    half_made = next((r for r in _open if r.run_id == run_id), None)
    if half_made is not None:  # stopped at the very end of TrackedRun.__init__
        half_made.end(exc)
        return
    if fluent_state is not None:
        fluent.detach(fluent_state)
    client.set_terminated(run_id, status)
