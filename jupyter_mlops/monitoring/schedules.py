"""``%schedule``: notebooks run on a cron schedule by APScheduler, with its job store in the store.

Who runs what:

- ``%schedule NB --cron ...`` only writes the job into ``<home>/schedules.sqlite`` (APScheduler 3's
  ``SQLAlchemyJobStore``, through a scheduler started paused, so nothing runs in the kernel).
- A *host* runs the jobs: the Jupyter server extension starts one for the store at the server
  root, and ``python -m jupyter_mlops.monitoring.scheduler HOME`` is the headless host (a
  container, systemd, a login node). A host holds ``<home>/locks/scheduler.lock``
  (``flock``): of several hosts on one store exactly one runs the jobs, so a schedule never fires
  twice; when it dies the OS drops its lock and the next host to start takes over. The job store
  is on disk, so schedules survive any restart.
- Each execution runs the notebook through papermill in a child process and is an MLflow run in
  the ``schedules`` experiment, with the executed notebook as an artifact and its outcome tagged.

``--export kubernetes`` writes a ``batch/v1`` CronJob running the same papermill command instead,
checked against the Kubernetes client's own ``V1CronJob`` model when that package is importable
(it is not a dependency: its python-dateutil>=3 pin conflicts with botocore's).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import records
from ..config import Settings
from ..errors import MLOpsNotFound, MLOpsUsageError
from .naming import slug
from .papermill_run import command, execute

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

TABLE = "mlops_schedules"
LOCK_NAME = "scheduler.lock"
DEFAULT_IMAGE = "python:3.12-slim"
CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
ORPHANED = "failed: the scheduler host stopped during the run"
HOST_HINT = (
    "no scheduler is running for this store: open JupyterLab here (the server extension runs "
    "schedules) or run: python -m jupyter_mlops.monitoring.scheduler {home}"
)


@dataclass(frozen=True)
class Schedule:
    id: str
    notebook: str
    cron: str
    parameters: dict[str, Any]
    next_run: dt.datetime | None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "notebook": self.notebook,
            "cron": self.cron,
            "parameters": self.parameters,
            "next_run": self.next_run.isoformat() if self.next_run else None,
        }

    def __repr__(self) -> str:
        when = f"{self.next_run:%Y-%m-%d %H:%M:%S} UTC" if self.next_run else "never (paused)"
        params = " ".join(f"-p {k} {v}" for k, v in self.parameters.items())
        return f"schedule {self.id}: {self.notebook} at {self.cron!r} {params}".rstrip() + (
            f", next run {when}"
        )


@dataclass(frozen=True)
class ScheduleList:
    schedules: tuple[Schedule, ...]
    host: str  # who runs them, or how to start a host
    removed: tuple[str, ...] = field(default=())

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.schedules]

    def __repr__(self) -> str:
        lines = [f"removed schedule {i}" for i in self.removed]
        lines += [repr(s) for s in self.schedules] or ["no schedules in this store"]
        return "\n".join([*lines, self.host])


@dataclass(frozen=True)
class Export:
    path: str
    manifest: dict[str, Any]
    validated: str  # how it was checked

    def __repr__(self) -> str:
        return f"wrote the Kubernetes CronJob {self.path} ({self.validated})"


# --- the job store -------------------------------------------------------------------------------
def store_url(home: Path) -> str:
    return f"sqlite:///{home / records.SCHEDULES_DB}"


def new_scheduler(home: Path, **extra: Any) -> BackgroundScheduler:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    home.mkdir(parents=True, exist_ok=True)
    stores = {"default": SQLAlchemyJobStore(url=store_url(home), tablename=TABLE)}
    stores.update(extra.pop("jobstores", {}))
    return BackgroundScheduler(jobstores=stores, timezone=dt.UTC, **extra)


@contextmanager
def paused(home: Path) -> Iterator[BackgroundScheduler]:
    """A scheduler that reads and writes the job store but runs nothing."""
    scheduler = new_scheduler(home)
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


def parse_cron(text: str) -> Any:
    """5 fields (minute hour day month weekday), or 6 with seconds first; UTC."""
    from apscheduler.triggers.cron import CronTrigger

    words = text.split()
    try:
        if len(words) == 5:
            return CronTrigger(**dict(zip(CRON_FIELDS, words, strict=True)), timezone=dt.UTC)
        if len(words) == 6:
            fields = dict(zip(("second", *CRON_FIELDS), words, strict=True))
            return CronTrigger(**fields, timezone=dt.UTC)
    except ValueError as exc:
        raise MLOpsUsageError(f"--cron {text!r}: {exc}") from None
    raise MLOpsUsageError(
        f'--cron {text!r}: give 5 fields "MIN HOUR DAY MONTH WEEKDAY" (e.g. "0 3 * * *"), or 6 '
        "with seconds first"
    )


def notebook_path(notebook: str) -> Path:
    path = Path(notebook).expanduser().resolve()
    if path.suffix != ".ipynb" or not path.is_file():
        raise MLOpsUsageError(f"{notebook!r} is no notebook file (.ipynb) here")
    return path


def add(settings: Settings, notebook: str, cron: str, parameters: Mapping[str, Any]) -> Schedule:
    trigger = parse_cron(cron)
    path = notebook_path(notebook)
    schedule_id = uuid.uuid4().hex[:8]
    with paused(settings.home) as scheduler:
        job = scheduler.add_job(
            run_scheduled,
            trigger,
            args=[
                str(settings.home),
                settings.tracking_uri,
                str(path),
                dict(parameters),
                cron,
                schedule_id,
            ],
            id=schedule_id,
            name=path.name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
        )
        return _schedule(job)


def list_schedules(settings: Settings) -> ScheduleList:
    if not (settings.home / records.SCHEDULES_DB).exists():
        return ScheduleList((), host_status(settings.home))
    with paused(settings.home) as scheduler:
        found = tuple(_schedule(job) for job in scheduler.get_jobs())
    return ScheduleList(found, host_status(settings.home))


def remove(settings: Settings, schedule_id: str) -> ScheduleList:
    from apscheduler.jobstores.base import JobLookupError

    if not (settings.home / records.SCHEDULES_DB).exists():
        raise MLOpsNotFound(f"no schedule {schedule_id!r} in this store; see %schedule list")
    with paused(settings.home) as scheduler:
        try:
            scheduler.remove_job(schedule_id)
        except JobLookupError:
            known = ", ".join(j.id for j in scheduler.get_jobs()) or "none"
            raise MLOpsNotFound(
                f"no schedule {schedule_id!r} in this store (schedules: {known}); "
                "see %schedule list"
            ) from None
        found = tuple(_schedule(job) for job in scheduler.get_jobs())
    return ScheduleList(found, host_status(settings.home), removed=(schedule_id,))


def _schedule(job: Any) -> Schedule:
    _, _, notebook, parameters, cron, _ = job.args
    return Schedule(job.id, notebook, cron, dict(parameters), job.next_run_time)


# --- the host ---------------------------------------------------------------------------------
def lock_path(home: Path) -> Path:
    return home / "locks" / LOCK_NAME


def take_host_lock(home: Path) -> int | None:
    """The host lock's file descriptor, or None when another host holds it."""
    path = lock_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def host_status(home: Path) -> str:
    fd = take_host_lock(home)
    if fd is None:
        try:
            pid = lock_path(home).read_text().strip()
        except OSError:
            pid = "?"
        return f"run by the scheduler host in process {pid}"
    os.close(fd)
    return HOST_HINT.format(home=home)


@dataclass
class Host:
    """A running host: its scheduler and the lock it holds."""

    scheduler: BackgroundScheduler
    lock_fd: int

    def stop(self, wait: bool = True) -> None:
        """Stop firing; with ``wait``, let the executions in flight finish (their runs end)."""
        self.scheduler.shutdown(wait=wait)
        os.close(self.lock_fd)


def start_host(home: Path, poll_s: float = 10.0) -> Host | None:
    """Run the store's schedules in this process (None when another host already does).

    The scheduler looks at its job store when a job is due; a job that another process added
    is seen at the next look, so a small in-memory job makes it look every ``poll_s`` seconds.
    """
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.memory import MemoryJobStore

    fd = take_host_lock(home)
    if fd is None:
        return None
    close_orphans(home)
    scheduler = new_scheduler(
        home,
        jobstores={"memory": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(2)},
    )
    scheduler.add_job(_look, "interval", seconds=poll_s, jobstore="memory", id="look")
    scheduler.start()
    return Host(scheduler, fd)


def close_orphans(home: Path) -> None:
    """Executions a dead host left RUNNING end as KILLED (only a host runs them, and this
    process now holds the host lock, so none of them is still running)."""
    from ..config import resolve_settings
    from ..tracking.client import mlflow_client

    settings = resolve_settings(home.parent, flags={"home": str(home)}, create_home=False)
    if not (home / records.SCHEDULES_DB).exists():
        return
    client = mlflow_client(settings.tracking_uri)
    found = client.get_experiment_by_name(records.SCHEDULE_EXPERIMENT)
    if found is None:
        return
    for run in client.search_runs([found.experiment_id], "attributes.status = 'RUNNING'"):
        client.set_tag(run.info.run_id, records.TAG_SCHEDULE_OUTCOME, ORPHANED)
        client.set_terminated(run.info.run_id, "KILLED")


def _look() -> None:
    """Nothing: being due wakes the scheduler, which then reads its job store."""


# --- one execution ------------------------------------------------------------------------------
def run_scheduled(
    home: str,
    tracking_uri: str,
    notebook: str,
    parameters: Mapping[str, Any],
    cron: str,
    schedule_id: str,
) -> str:
    """Execute one scheduled notebook as an MLflow run; returns the run id."""
    from ..config import resolve_settings
    from ..tracking.client import mlflow_client
    from ..tracking.run import experiment_id

    settings = resolve_settings(
        Path(home).parent, flags={"home": home, "tracking_uri": tracking_uri}
    )
    client = mlflow_client(tracking_uri)
    exp = experiment_id(client, records.SCHEDULE_EXPERIMENT, settings.home, tracking_uri)
    stem = slug(Path(notebook).stem)
    run = client.create_run(
        exp,
        run_name=f"schedule {Path(notebook).name}",
        tags={records.TAG_SCHEDULE_NOTEBOOK: notebook, records.TAG_SCHEDULE_ID: schedule_id},
    )
    run_id = str(run.info.run_id)
    output = (
        settings.home
        / records.MONITORING_DIRNAME
        / records.SCHEDULE_OUTPUT_FOLDER
        / f"{stem}-{time.strftime('%Y%m%dT%H%M%S')}-{run_id[:8]}.ipynb"
    )
    status = "FAILED"
    try:
        done = execute(settings, notebook, output, parameters)
        outcome = "succeeded" if done.returncode == 0 else f"failed: {done.error}"[:250]
        client.set_tag(run_id, records.TAG_SCHEDULE_OUTCOME, outcome)
        if output.is_file():
            client.log_artifact(run_id, str(output), records.SCHEDULE_OUTPUT_FOLDER)
        status = "FINISHED" if done.returncode == 0 else "FAILED"
    finally:
        client.set_terminated(run_id, status)
    return run_id


# --- Kubernetes --------------------------------------------------------------------------------
def cronjob_manifest(
    settings: Settings, notebook: Path, cron: str, parameters: Mapping[str, Any], image: str
) -> dict[str, Any]:
    name = "mlops-" + re.sub(r"[^a-z0-9-]+", "-", notebook.stem.lower()).strip("-")[:40]
    output = f"/tmp/{notebook.stem}-out.ipynb"
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name.rstrip("-") or "mlops-notebook"},
        "spec": {
            "schedule": cron,
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "notebook",
                                    "image": image,
                                    "workingDir": str(notebook.parent),
                                    "command": command(notebook, output, parameters),
                                    "env": [
                                        {"name": "MLOPS_HOME", "value": str(settings.home)},
                                        {
                                            "name": "MLFLOW_TRACKING_URI",
                                            "value": settings.tracking_uri,
                                        },
                                    ],
                                }
                            ],
                        }
                    },
                }
            },
        },
    }


def validate_cronjob(manifest: dict[str, Any]) -> Any:
    """Deserialize with the Kubernetes client's own ``V1CronJob`` model (client-side validation
    raises on a missing required field or a wrong type)."""
    from kubernetes.client import ApiClient

    client = ApiClient()
    return client._ApiClient__deserialize(manifest, "V1CronJob")


def export_kubernetes(
    settings: Settings,
    notebook: str,
    cron: str,
    parameters: Mapping[str, Any],
    *,
    output: str | None = None,
    image: str | None = None,
) -> Export:
    import yaml

    if len(cron.split()) != 5:
        raise MLOpsUsageError(f"--cron {cron!r}: a Kubernetes CronJob takes 5 fields")
    parse_cron(cron)
    path = notebook_path(notebook)
    manifest = cronjob_manifest(settings, path, cron, parameters, image or DEFAULT_IMAGE)
    try:
        validate_cronjob(manifest)
        validated = "checked against kubernetes.client.V1CronJob"
    except ImportError:
        validated = "not checked: pip install kubernetes to check it against its V1CronJob model"
    target = Path(output) if output else path.with_name(f"{path.stem}-cronjob.yaml")
    target.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return Export(str(target), manifest, validated)
