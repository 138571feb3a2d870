"""%schedule: a schedule is created, listed, fires with no kernel open (run by the headless host),
survives the host being SIGKILLed and a new host starting, and is removed; one host per store;
the Kubernetes export is checked against the kubernetes client's own V1CronJob model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from jupyter_mlops import records
from jupyter_mlops.context import current_settings
from jupyter_mlops.errors import MLOpsNotFound, MLOpsUsageError
from jupyter_mlops.monitoring import schedules
from jupyter_mlops.tracking.client import mlflow_client
from tests.notebooks import notebook

REPO = Path(__file__).resolve().parent.parent
K8S_PYTHON = REPO / ".venv-k8s" / "bin" / "python"
WAIT_S = 120.0


def start_host(home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter_mlops.monitoring.scheduler", str(home), "--poll", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def executions(home: Path) -> list[tuple[str, str]]:
    """(status, outcome) of every scheduled execution's run so far."""
    client = mlflow_client(f"sqlite:///{home / 'mlflow.db'}")
    found = client.get_experiment_by_name(records.SCHEDULE_EXPERIMENT)
    if found is None:
        return []
    runs = client.search_runs([found.experiment_id])
    return [(r.info.status, r.data.tags.get(records.TAG_SCHEDULE_OUTCOME, "")) for r in runs]


def wait_for_runs(home: Path, count: int, host: subprocess.Popen[str]) -> list[tuple[str, str]]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        done = [e for e in executions(home) if e[0] != "RUNNING"]
        if len(done) >= count:
            return done
        assert host.poll() is None, host.stderr.read() if host.stderr else ""
        time.sleep(0.5)
    raise AssertionError(f"fewer than {count} executions in {WAIT_S:g} s: {executions(home)}")


def test_a_schedule_fires_survives_a_host_restart_and_is_removed(store: Path) -> None:
    settings = current_settings()
    nb = store.parent / "job.ipynb"
    book = notebook("greeting = 'x'", "open('fired.txt', 'a').write(greeting + '\\n')")
    book.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(book, nb)
    made = schedules.add(settings, str(nb), "*/2 * * * * *", {"greeting": "hello"})
    listed = schedules.list_schedules(settings)
    assert listed.ids == [made.id] and "no scheduler is running" in listed.host
    assert listed.schedules[0].parameters == {"greeting": "hello"}

    first = start_host(store)
    try:
        assert wait_for_runs(store, 1, first)[0] == ("FINISHED", "succeeded")
        assert "run by the scheduler host in process" in schedules.list_schedules(settings).host
        second = start_host(store)  # one host per store: the second one leaves at once
        assert second.wait(timeout=60) == 3
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    orphans = [e for e in executions(store) if e[0] == "RUNNING"]  # killed mid-execution
    before = len(executions(store)) - len(orphans)
    again = start_host(store)  # a fresh host after a crash finds the schedule in the store
    try:
        runs = wait_for_runs(store, before + len(orphans) + 1, again)
        assert sum(outcome == "succeeded" for _, outcome in runs) >= before + 1
        killed = [e for e in runs if e[0] == "KILLED"]  # what the dead host left, closed
        assert len(killed) == len(orphans)
        assert all("host stopped" in outcome for _, outcome in killed)
        removed = schedules.remove(settings, made.id)
        assert removed.removed == (made.id,) and removed.ids == []
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=30) == 0
    assert (store.parent / "fired.txt").read_text().splitlines()[0] == "hello"
    assert schedules.list_schedules(settings).ids == []
    client = mlflow_client(settings.tracking_uri)
    run = client.search_runs(
        [client.get_experiment_by_name(records.SCHEDULE_EXPERIMENT).experiment_id]
    )[0]
    assert run.data.tags[records.TAG_SCHEDULE_ID] == made.id
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "schedule")]
    assert len(artifacts) == 1 and artifacts[0].endswith(".ipynb")


def test_bad_schedules_are_one_line_errors(store: Path) -> None:
    settings = current_settings()
    nb = store.parent / "job.ipynb"
    notebook("1", path=nb)
    for cron, message in [("every day", "give 5 fields"), ("61 * * * *", "--cron '61")]:
        with pytest.raises(MLOpsUsageError, match=message) as raised:
            schedules.add(settings, str(nb), cron, {})
        assert "\n" not in str(raised.value)
    with pytest.raises(MLOpsUsageError, match="no notebook file"):
        schedules.add(settings, "missing.ipynb", "0 3 * * *", {})
    with pytest.raises(MLOpsNotFound, match="no schedule 'nope'"):
        schedules.remove(settings, "nope")


def test_kubernetes_export_is_a_valid_cronjob_running_the_same_papermill_command(
    store: Path,
) -> None:
    settings = current_settings()
    nb = store.parent / "retrain.ipynb"
    notebook("epochs = 1", path=nb)
    exported = schedules.export_kubernetes(settings, str(nb), "0 3 * * *", {"epochs": "40"})
    manifest = yaml.safe_load(Path(exported.path).read_text())
    container = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["papermill", str(nb.resolve()), "/tmp/retrain-out.ipynb"]
    assert container["command"][-3:] == ["-p", "epochs", "40"]
    assert manifest["spec"]["schedule"] == "0 3 * * *"
    # The kubernetes client (its own venv: it pins python-dateutil>=3) deserializes it into
    # V1CronJob with client-side validation, and a manifest missing a required field fails.
    check = (
        "import sys, yaml; from jupyter_mlops.monitoring.schedules import validate_cronjob; "
        "job = validate_cronjob(yaml.safe_load(open(sys.argv[1]))); "
        "print(type(job).__name__, job.spec.schedule, job.spec.job_template.spec.template"
        ".spec.containers[0].command[0])"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [str(K8S_PYTHON), "-c", check, exported.path], capture_output=True, text=True, env=env
    )
    assert done.stdout.split() == ["V1CronJob", "0", "3", "*", "*", "*", "papermill"], done.stderr
    del manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["name"]
    broken = store.parent / "broken.yaml"
    broken.write_text(yaml.safe_dump(manifest))
    done = subprocess.run(
        [str(K8S_PYTHON), "-c", check, str(broken)], capture_output=True, text=True, env=env
    )
    assert done.returncode != 0 and "name" in done.stderr
    with pytest.raises(MLOpsUsageError, match="takes 5 fields"):
        schedules.export_kubernetes(settings, str(nb), "0 0 3 * * *", {})
