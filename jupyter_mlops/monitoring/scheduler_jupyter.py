"""``%schedule`` run by jupyter-scheduler (the JupyterLab scheduling extension, ``[schedule]``).

A schedule is a jupyter-scheduler *job definition* on the Jupyter server that runs this kernel,
made, listed and deleted through that server's REST API (``/scheduler/job_definitions``) with the
server's URL and token from ``jpserver-<pid>.json`` beside the kernel's connection file, the way
:mod:`jupyter_mlops.notebook` finds the server. The definitions are tagged ``jupyter-mlops`` and
with the store folder, so ``%schedule list`` shows this store's own.

jupyter-scheduler executes the notebook itself (nbconvert in a process it spawns), so it cannot
call our recording. Its finished jobs are recorded instead when ``%schedule list`` or
``%schedule rm`` reads its jobs API: each COMPLETED/FAILED/STOPPED job of this store becomes one
run in the ``schedules`` experiment (the same tags as an APScheduler execution, plus
``mlops.schedule.job``), with the output notebook jupyter-scheduler wrote as its artifact. A job is
recorded once (under a lock in the store); ``rm`` records before deleting, since deleting a
definition deletes its jobs.
"""

from __future__ import annotations

import ast
import datetime as dt
import fcntl
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import records
from ..config import Settings
from ..errors import MLOpsError, MLOpsNotFound, MLOpsUsageError
from ..notebook import kernel_connection_file
from .schedules import Schedule, ScheduleList, notebook_path, parse_cron

TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0
SYNC_LOCK = "jupyter-scheduler-sync.lock"
FINISHED = {"COMPLETED": "FINISHED", "FAILED": "FAILED", "STOPPED": "KILLED"}
ENVIRONMENT = "jupyter-mlops"  # jupyter-scheduler's runtime_environment_name (a label only)


@dataclass(frozen=True)
class JupyterServer:
    url: str
    token: str
    root_dir: Path

    def call(self, method: str, path: str, body: Any = None, timeout: float = TIMEOUT_S) -> Any:
        """One REST call; the decoded JSON answer (None for 204)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url.rstrip('/')}/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("message", "")
            except (ValueError, AttributeError):
                message = ""
            message = (message or exc.reason or "").splitlines()[0] if message else str(exc.reason)
            raise MLOpsError(
                f"jupyter-scheduler at {self.url} refused {method} {path.split('?')[0]} "
                f"({exc.code}): {message}"
            ) from None
        except (OSError, ValueError) as exc:
            raise MLOpsError(
                f"the Jupyter server {self.url} did not answer ({exc}); is it still running?"
            ) from None
        return json.loads(raw) if raw else None

    def has_scheduler(self) -> bool:
        """Whether this server runs the jupyter_scheduler extension."""
        try:
            self.call("GET", "scheduler/config", timeout=PROBE_TIMEOUT_S)
        except MLOpsError:
            return False
        return True


def kernel_server(
    env: Mapping[str, str] | None = None, argv: Sequence[str] | None = None
) -> JupyterServer | None:
    """The Jupyter server that started this kernel (``JPY_PARENT_PID``), or None."""
    env = os.environ if env is None else env
    connection_file = kernel_connection_file(sys.argv if argv is None else argv)
    pid = env.get("JPY_PARENT_PID", "")
    if connection_file is None or not pid.isdigit():
        return None
    try:
        info = json.loads((connection_file.parent / f"jpserver-{pid}.json").read_text())
        return JupyterServer(
            str(info["url"]), str(info.get("token", "")), Path(info["root_dir"]).expanduser()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def as_source(value: Any) -> str:
    """A parameter as the Python source jupyter-scheduler injects (``name = SOURCE``), typed the
    way ``papermill -p`` types it: True/False/None, int, float, else a string."""
    text = str(value)
    if text in ("True", "False", "None"):
        return text
    for kind in (int, float):
        try:
            return repr(kind(text))
        except ValueError:
            pass
    return repr(text)


def from_source(source: str) -> str:
    """The value as given to ``-p``, back from :func:`as_source`."""
    try:
        return str(ast.literal_eval(source))
    except (ValueError, SyntaxError):
        return source


def home_tag(settings: Settings) -> str:
    return records.SCHEDULER_HOME_TAG + str(settings.home)


def _schedule(definition: Mapping[str, Any], root: Path) -> Schedule:
    cron = str(definition.get("schedule") or "")
    next_run = None
    if cron and definition.get("active", True):
        next_run = parse_cron(cron).get_next_fire_time(None, dt.datetime.now(dt.UTC))
    notebook = str(root / definition.get("input_filename", ""))
    return Schedule(
        str(definition["job_definition_id"]),
        notebook,
        cron,
        {k: from_source(v) for k, v in (definition.get("parameters") or {}).items()},
        next_run,
    )


@dataclass(frozen=True)
class JupyterSchedulerBackend:
    """Schedules as jupyter-scheduler job definitions on ``server``."""

    server: JupyterServer
    name: str = "jupyter-scheduler"

    @property
    def host(self) -> str:
        return f"run by jupyter-scheduler on the Jupyter server {self.server.url}"

    def add(
        self, settings: Settings, notebook: str, cron: str, parameters: Mapping[str, Any]
    ) -> Schedule:
        if len(cron.split()) != 5:
            raise MLOpsUsageError(
                f'--cron {cron!r}: jupyter-scheduler takes 5 fields "MIN HOUR DAY MONTH WEEKDAY"'
            )
        parse_cron(cron)
        path = notebook_path(notebook)
        root = self.server.root_dir.resolve()
        if not path.is_relative_to(root):
            raise MLOpsUsageError(
                f"{notebook!r} is outside the Jupyter server's root {root}: jupyter-scheduler "
                "only runs notebooks under it; move it there or use --backend apscheduler"
            )
        body = {
            "input_uri": str(path.relative_to(root)),
            "name": f"{records.SCHEDULER_JOB_TAG} {path.stem}",
            "runtime_environment_name": ENVIRONMENT,
            "output_formats": ["ipynb"],
            "parameters": {str(k): as_source(v) for k, v in parameters.items()},
            "tags": [records.SCHEDULER_JOB_TAG, home_tag(settings)],
            "schedule": cron,
            "timezone": "UTC",
        }
        made = self.server.call("POST", "scheduler/job_definitions", body)
        found = self.server.call("GET", f"scheduler/job_definitions/{made['job_definition_id']}")
        return _schedule(found, root)

    def definitions(self, settings: Settings) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"tags": home_tag(settings), "max_items": 1000})
        answer = self.server.call("GET", f"scheduler/job_definitions?{query}")
        return list(answer.get("job_definitions") or [])

    def list(self, settings: Settings) -> ScheduleList:
        record_finished(settings, self.server)
        root = self.server.root_dir.resolve()
        found = tuple(_schedule(d, root) for d in self.definitions(settings))
        return ScheduleList(found, self.host)

    def remove(self, settings: Settings, schedule_id: str) -> ScheduleList:
        known = [str(d["job_definition_id"]) for d in self.definitions(settings)]
        if schedule_id not in known:
            raise MLOpsNotFound(
                f"no schedule {schedule_id!r} in this store (schedules: "
                f"{', '.join(known) or 'none'}); see %schedule list"
            )
        record_finished(settings, self.server)  # deleting the definition deletes its jobs
        self.server.call("DELETE", f"scheduler/job_definitions/{schedule_id}")
        root = self.server.root_dir.resolve()
        left = tuple(_schedule(d, root) for d in self.definitions(settings))
        return ScheduleList(left, self.host, removed=(schedule_id,))

    def run_now(self, schedule_id: str, parameters: Mapping[str, Any] | None = None) -> str:
        """One execution of the definition now (jupyter-scheduler's "run job"); the job id."""
        body = (
            {"parameters": {k: as_source(v) for k, v in parameters.items()}} if parameters else {}
        )
        made = self.server.call("POST", f"scheduler/job_definitions/{schedule_id}/jobs", body)
        return str(made["job_id"])


@contextmanager
def _sync_lock(home: Path) -> Iterator[None]:
    path = home / "locks" / SYNC_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def record_finished(settings: Settings, server: JupyterServer) -> list[str]:
    """Record every finished jupyter-scheduler job of this store not yet recorded; run ids."""
    from ..tracking.client import mlflow_client
    from ..tracking.run import experiment_id

    query = urllib.parse.urlencode({"tags": home_tag(settings), "max_items": 1000})
    jobs = [
        job
        for job in server.call("GET", f"scheduler/jobs?{query}").get("jobs") or []
        if job.get("status") in FINISHED and job.get("start_time")  # a new job is STOPPED too
    ]
    if not jobs:
        return []
    client = mlflow_client(settings.tracking_uri)
    made: list[str] = []
    with _sync_lock(settings.home):
        exp = experiment_id(
            client, records.SCHEDULE_EXPERIMENT, settings.home, settings.tracking_uri
        )
        seen = {
            run.data.tags.get(records.TAG_SCHEDULE_JOB)
            for run in client.search_runs([exp], max_results=5000)
        }
        for job in jobs:
            if job["job_id"] not in seen:
                made.append(_record(client, exp, server, job))
    return made


def _record(client: Any, exp: str, server: JupyterServer, job: Mapping[str, Any]) -> str:
    status = FINISHED[job["status"]]
    if status == "FINISHED":
        outcome = "succeeded"
    else:
        message = (job.get("status_message") or job["status"].lower()).strip().splitlines()
        outcome = f"failed: {message[-1] if message else job['status'].lower()}"[:250]
    run = client.create_run(
        exp,
        start_time=job.get("start_time") or job.get("create_time"),
        run_name=f"schedule {job.get('input_filename', '')}",
        tags={
            records.TAG_SCHEDULE_NOTEBOOK: str(server.root_dir / job.get("input_filename", "")),
            records.TAG_SCHEDULE_ID: str(job.get("job_definition_id") or ""),
            records.TAG_SCHEDULE_JOB: str(job["job_id"]),
            records.TAG_SCHEDULE_OUTCOME: outcome,
        },
    )
    run_id = str(run.info.run_id)
    if not job.get("downloaded"):  # the output stays in its staging area until "downloaded"
        try:
            server.call("GET", f"scheduler/jobs/{job['job_id']}/download_files")
            job = server.call("GET", f"scheduler/jobs/{job['job_id']}")
        except MLOpsError:
            pass  # recorded without the notebook: the outcome is what matters most
    for file in job.get("job_files") or []:
        relative = file.get("file_path")
        if file.get("file_format") == "ipynb" and relative:
            output = server.root_dir / relative
            if output.is_file():
                client.log_artifact(run_id, str(output), records.SCHEDULE_OUTPUT_FOLDER)
    client.set_terminated(run_id, status, end_time=job.get("end_time"))
    return run_id
