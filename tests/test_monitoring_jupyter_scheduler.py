"""%schedule through jupyter-scheduler: a real `jupyter server` running the jupyter_scheduler
extension; the backend finds it from a kernel's view (JPY_PARENT_PID + jpserver-<pid>.json), makes
a job definition, lists it with its next run, runs it once ("run now"), records that execution as
an MLflow run with the executed notebook, and removes it."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from jupyter_mlops import records
from jupyter_mlops.context import current_settings
from jupyter_mlops.errors import MLOpsNotFound, MLOpsUsageError
from jupyter_mlops.monitoring import schedule_backends
from jupyter_mlops.monitoring.scheduler_jupyter import (
    JupyterSchedulerBackend,
    JupyterServer,
    kernel_server,
)
from jupyter_mlops.tracking.client import mlflow_client
from tests.lab_server import LabServer, running_server
from tests.notebooks import notebook

WAIT_S = 60.0
JOBS_WAIT_S = 180.0  # two notebook jobs, each starting a kernel: minutes on a loaded CI machine


@pytest.fixture
def scheduler_server(store: Path, tmp_path: Path) -> Iterator[tuple[LabServer, Path]]:
    """`jupyter server` at the project folder with jupyter_scheduler enabled; its data (the
    scheduler's SQLite and staging area) and runtime files under tmp_path."""
    runtime = tmp_path / "runtime"
    env = {
        **os.environ,
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(runtime),
    }
    with running_server(
        "jupyter_server",
        ["--ServerApp.jpserver_extensions=jupyter_scheduler=True"],
        store.parent,
        tmp_path / "server.log",
        ready_path="scheduler/config",
        env=env,
        cwd=store.parent,  # jupyter-scheduler copies job outputs to paths relative to its cwd
        timeout=WAIT_S,
    ) as jupyter:
        yield jupyter, runtime


def test_a_job_definition_is_made_listed_run_recorded_and_removed(
    scheduler_server: tuple[LabServer, Path],
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jupyter, runtime = scheduler_server
    settings = current_settings()
    # The kernel's view: its server's pid and a connection file in the server's runtime folder.
    argv = ["ipykernel_launcher", "-f", str(runtime / "kernel-0000-1111.json")]
    server = kernel_server({"JPY_PARENT_PID": str(jupyter.pid)}, argv)
    assert isinstance(server, JupyterServer) and server.root_dir == store.parent
    assert server.has_scheduler()
    monkeypatch.setenv("JPY_PARENT_PID", str(jupyter.pid))
    monkeypatch.setattr(sys, "argv", argv)
    backend = schedule_backends.choose()
    assert isinstance(backend, JupyterSchedulerBackend)  # preferred when the server runs it

    nb = store.parent / "job.ipynb"
    book = notebook("greeting = 'x'", "print(greeting + '!')")
    book.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(book, nb)
    made = backend.add(settings, str(nb), "0 3 * * *", {"greeting": "hello"})
    listed = backend.list(settings)
    assert listed.ids == [made.id] and "jupyter-scheduler" in listed.host
    only = listed.schedules[0]
    assert only.cron == "0 3 * * *" and only.parameters == {"greeting": "hello"}
    assert only.notebook == str(nb) and only.next_run is not None
    assert (only.next_run.hour, only.next_run.minute) == (3, 0)
    for cron, message in [("*/2 * * * * *", "takes 5 fields"), ("61 * * * *", "--cron '61")]:
        with pytest.raises(MLOpsUsageError, match=message):
            backend.add(settings, str(nb), cron, {})
    outside = store.parent.parent / "outside.ipynb"
    notebook("1", path=outside)
    with pytest.raises(MLOpsUsageError, match="outside the Jupyter server's root"):
        backend.add(settings, str(outside), "0 3 * * *", {})

    # jupyter-scheduler's "run job" from the definition, twice: as defined, and with a
    # parameter that makes the notebook fail
    backend.run_now(made.id)
    backend.run_now(made.id, {"greeting": "None"})
    client = mlflow_client(settings.tracking_uri)
    deadline = time.monotonic() + JOBS_WAIT_S
    runs: list = []
    while len(runs) < 2 and time.monotonic() < deadline:
        backend.list(settings)  # records what finished
        found = client.get_experiment_by_name(records.SCHEDULE_EXPERIMENT)
        runs = client.search_runs([found.experiment_id]) if found else []
        if len(runs) < 2:
            time.sleep(0.5)
    by_status = {r.info.status: r for r in runs}
    jobs = [(j["status"], j.get("status_message")) for j in backend.server.call(
        "GET", "scheduler/jobs").get("jobs") or []]  # fmt: skip
    assert sorted(by_status) == ["FAILED", "FINISHED"], ([r.data.tags for r in runs], jobs)
    failed = by_status["FAILED"].data.tags[records.TAG_SCHEDULE_OUTCOME]
    assert failed.startswith("failed:") and "TypeError" in failed
    run = by_status["FINISHED"]
    assert run.data.tags[records.TAG_SCHEDULE_OUTCOME] == "succeeded"
    assert run.data.tags[records.TAG_SCHEDULE_ID] == made.id
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "schedule")]
    assert len(artifacts) == 1 and artifacts[0].endswith(".ipynb")
    executed = nbformat.read(client.download_artifacts(run.info.run_id, artifacts[0]), 4)
    printed = [o.get("text", "") for c in executed.cells for o in c.get("outputs", [])]
    assert printed == ["hello!\n"]  # the parameter, typed as papermill -p types it
    backend.list(settings)  # a job is recorded once
    assert len(client.search_runs([found.experiment_id])) == 2

    removed = backend.remove(settings, made.id)
    assert removed.removed == (made.id,) and removed.ids == []
    with pytest.raises(MLOpsNotFound, match=f"no schedule {made.id!r}"):
        backend.remove(settings, made.id)


def test_without_a_server_running_it_the_choice_is_apscheduler(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    assert schedule_backends.choose().name == "apscheduler"
    with pytest.raises(MLOpsUsageError, match="not started by a Jupyter server") as raised:
        schedule_backends.choose("jupyter-scheduler")
    assert "\n" not in str(raised.value)
    with pytest.raises(MLOpsUsageError, match="use one of jupyter-scheduler, apscheduler"):
        schedule_backends.choose("cron")
