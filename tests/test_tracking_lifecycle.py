"""%%track and mlops.track: run lifecycle, re-run policies, ownership and what gets recorded."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

import jupyter_mlops as mlops
from jupyter_mlops.tracking import active
from jupyter_mlops.tracking.run import TAG_SUPERSEDED
from tests.tracking_support import all_runs, client_for


def cell(ip: Any, source: str, cell_id: str = "cell-1") -> Any:
    return ip.run_cell(source, cell_id=cell_id)


def only_run(home: Path) -> Any:
    runs = all_runs(home)
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def test_cell_runs_in_a_finished_run_with_params_source_and_environment(ip: Any, store: Path):
    ip.user_ns.update(lr=0.05, layers=[64, 32])
    source = (
        "%%track baseline --experiment exp --params lr layers epochs --tag team=vision\n"
        "epochs = 3\n"
        "for i in range(10):\n"
        "    mlops.log(loss=1 / (i + 1))\n"
        "lr * 2\n"
    )
    ip.user_ns["mlops"] = mlops
    result = cell(ip, source, "abc-123")
    assert result.success, result.error_in_exec
    assert result.result == 0.1  # the cell's last expression is still its value

    run = only_run(store)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "baseline"
    assert run.data.params == {"lr": "0.05", "layers": "[64, 32]", "epochs": "3"}
    tags = run.data.tags
    assert tags["team"] == "vision"
    assert tags["mlops.cell_id"] == "abc-123"
    assert tags["mlops.python"].count(".") == 2
    assert tags["mlops.pkg.mlflow-skinny"]
    assert tags["mlops.gpus"] == "[]"  # no GPU here; the list comes from nvidia-smi
    client = client_for(store)
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [
        1 / (i + 1) for i in range(10)
    ]
    cell_file = Path(client.download_artifacts(run.info.run_id, "cell.py"))
    assert cell_file.read_text() == source.split("\n", 1)[1]
    # Artifacts live in the store folder, never in ./mlruns beside the notebook.
    assert run.info.artifact_uri.startswith((store / "artifacts").as_uri())
    assert not Path("mlruns").exists()
    assert active.active_run() is None


def test_exception_fails_the_run_records_the_error_and_keeps_every_value(ip: Any, store: Path):
    ip.user_ns["mlops"] = mlops
    result = cell(
        ip,
        "%%track --experiment exp\n"
        "for i in range(500):\n"
        "    mlops.log(x=i)\n"
        "raise ValueError('bad batch 7')\n",
    )
    assert isinstance(result.error_in_exec, ValueError)
    run = only_run(store)
    assert run.info.status == "FAILED"
    assert run.data.tags["mlops.error"] == "ValueError: bad batch 7"
    client = client_for(store)
    history = client.get_metric_history(run.info.run_id, "x")
    assert sorted(m.value for m in history) == [float(i) for i in range(500)]
    trace = Path(client.download_artifacts(run.info.run_id, "error.txt")).read_text()
    assert "ValueError: bad batch 7" in trace
    # Nothing leaks into the next cell.
    later = cell(ip, "mlops.log(x=1)", "cell-2")
    assert isinstance(later.error_in_exec, mlops.MLOpsUsageError)
    assert "%%track" in str(later.error_in_exec)


def test_keyboard_interrupt_kills_the_run(ip: Any, store: Path):
    result = cell(ip, "%%track --experiment exp\nraise KeyboardInterrupt\n")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert only_run(store).info.status == "KILLED"


def test_syntax_error_opens_no_run(ip: Any, store: Path):
    result = cell(ip, "%%track --experiment exp\nfor\n")
    assert str(result.error_in_exec).startswith("%%track: SyntaxError at line 2: invalid syntax")
    assert all_runs(store) == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--params nope", "no variable 'nope'"),
        ("--params 1bad", "is not a variable name"),
        ("--policy sometimes", "invalid choice"),
        ("--tag novalue", "is not KEY=VALUE"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors_and_create_nothing(
    ip: Any, store: Path, line: str, message: str, capsys: pytest.CaptureFixture[str]
):
    from IPython.core.error import UsageError

    ip.user_ns["x"] = 0
    with pytest.raises(UsageError, match=message) as info:
        ip.run_cell_magic("track", f"--experiment exp {line}", "x = 1\n")
    assert str(info.value).startswith("%track")
    assert "\n" not in str(info.value)
    assert all_runs(store) == []
    assert ip.user_ns["x"] == 0  # the cell body never ran


def test_params_assigned_in_the_cell_are_read_when_it_ends(ip: Any, store: Path):
    ip.user_ns.pop("batch", None)
    result = cell(ip, "%%track --experiment exp --params batch\nbatch = {'size': 32}\n")
    assert result.success
    assert only_run(store).data.params == {"batch": '{"size": 32}'}


def test_auto_policy_replaces_the_previous_run_of_the_cell_interactively(ip: Any, store: Path):
    for _ in range(2):
        assert cell(ip, "%%track --experiment exp\npass\n", "same-cell").success
    runs = {r.info.run_id: r for r in all_runs(store)}
    assert len(runs) == 2
    old = next(r for r in runs.values() if TAG_SUPERSEDED in r.data.tags)
    new = runs[old.data.tags[TAG_SUPERSEDED]]
    assert new.data.tags["mlops.replaces"] == old.info.run_id
    assert old.info.status == new.info.status == "FINISHED"  # kept, not deleted
    listed = mlops.runs(experiment="exp")
    assert list(listed.run_id) == [new.info.run_id]
    assert len(mlops.runs(experiment="exp", include_superseded=True)) == 2
    # Another cell is another run identity.
    assert cell(ip, "%%track --experiment exp\npass\n", "other-cell").success
    assert len(mlops.runs(experiment="exp")) == 2


def test_auto_policy_makes_a_new_run_in_batch(ip: Any, store: Path):
    ip.user_ns["PAPERMILL_INPUT_PATH"] = str(Path.cwd() / "batch.ipynb")
    try:
        for _ in range(2):
            assert cell(ip, "%%track --experiment exp\npass\n", "same-cell").success
    finally:
        del ip.user_ns["PAPERMILL_INPUT_PATH"]
    runs = all_runs(store)
    assert len(runs) == 2
    assert not any(TAG_SUPERSEDED in r.data.tags for r in runs)
    assert {r.data.tags["mlops.notebook_source"] for r in runs} == {"papermill"}


def test_new_policy_keeps_both_runs(ip: Any, store: Path):
    for _ in range(2):
        assert cell(ip, "%%track --experiment exp --policy new\npass\n", "c").success
    runs = all_runs(store)
    assert len(runs) == 2 and not any(TAG_SUPERSEDED in r.data.tags for r in runs)


def test_resume_policy_reopens_the_run_and_continues_steps(ip: Any, store: Path):
    ip.user_ns["mlops"] = mlops
    body = "%%track --experiment exp --policy resume\nfor i in range(5):\n    mlops.log(x=i)\n"
    assert cell(ip, body, "c").success
    assert cell(ip, body, "c").success
    run = only_run(store)
    assert run.info.status == "FINISHED"
    history = client_for(store).get_metric_history(run.info.run_id, "x")
    assert sorted(m.step for m in history) == list(range(10))


def test_runs_opened_in_one_cell_execution_never_replace_each_other(ip: Any, store: Path):
    ip.user_ns["mlops"] = mlops
    source = (
        "for lr in (0.1, 0.01):\n"
        "    with mlops.track(params={'lr': lr}, experiment='exp'):\n"
        "        pass\n"
    )
    assert cell(ip, source, "sweep").success
    assert cell(ip, source, "sweep").success
    visible = mlops.runs(experiment="exp")
    assert sorted(visible["params.lr"]) == ["0.01", "0.1"]
    assert len(mlops.runs(experiment="exp", include_superseded=True)) == 4


def test_a_run_the_user_opened_with_mlflow_is_never_closed(ip: Any, store: Path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    try:
        with mlflow.start_run() as outer:
            assert cell(ip, "%%track --experiment exp\npass\n").success
            still = mlflow.active_run()
            assert still is not None and still.info.run_id == outer.info.run_id
            assert mlflow.get_run(outer.info.run_id).info.status == "RUNNING"
            assert active.active_run() == active.ActiveRun(
                outer.info.run_id, f"sqlite:///{store / 'mlflow.db'}"
            )
        ours = next(r for r in all_runs(store) if r.info.run_id != outer.info.run_id)
        assert ours.info.status == "FINISHED"
        assert ours.data.tags["mlflow.parentRunId"] == outer.info.run_id
        assert mlflow.get_run(outer.info.run_id).info.status == "FINISHED"  # closed by its owner
    finally:
        mlflow.set_tracking_uri("")


def test_python_api_context_manager_and_faithful_params(store: Path):
    import numpy as np

    with mlops.track(
        "api", experiment="exp", params={"lr": np.float32(0.5), "name": "resnet", "flag": True}
    ) as run:
        mlops.log(step=7, acc=0.75)
        mlops.log_params(optimizer={"kind": "adam", "betas": [0.9, 0.99]})
        Path("notes.txt").write_text("hello")
        mlops.log_artifact("notes.txt")
    stored = only_run(store)
    assert stored.info.run_id == run.run_id
    assert stored.data.params == {
        "lr": "0.5",
        "name": "resnet",
        "flag": "True",
        "optimizer": '{"kind": "adam", "betas": [0.9, 0.99]}',
    }
    assert stored.data.metrics == {"acc": 0.75}
    client = client_for(store)
    assert [m.step for m in client.get_metric_history(run.run_id, "acc")] == [7]
    assert Path(client.download_artifacts(run.run_id, "notes.txt")).read_text() == "hello"
    with pytest.raises(mlops.MLOpsUsageError, match="no tracked run is active"):
        mlops.log(acc=1.0)


def test_git_commit_and_dirty_flag_are_recorded(store: Path, tmp_path: Path):
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    Path("train.py").write_text("a = 1\n")
    git("add", "train.py")
    git("commit", "-qm", "first")
    head = git("rev-parse", "HEAD")
    with mlops.track("clean", experiment="exp", policy="new"):
        pass
    Path("train.py").write_text("a = 2\n")
    with mlops.track("dirty", experiment="exp", policy="new"):
        pass
    runs = {r.info.run_name: r.data.tags for r in all_runs(store)}
    assert runs["clean"]["mlflow.source.git.commit"] == head
    assert runs["clean"]["mlops.git.dirty"] == "false"
    assert runs["dirty"]["mlops.git.dirty"] == "true"


def test_snapshots_saved_or_loaded_in_the_cell_become_run_inputs(ip: Any, store: Path):
    import pandas as pd

    ip.user_ns.update(mlops=mlops, frame=pd.DataFrame({"a": [1, 2, 3]}))
    assert cell(ip, "%snapshot frame --name train", "snap").success
    result = cell(
        ip,
        "%%track --experiment exp\n"
        "saved = mlops.snapshot(frame.assign(b=1.0), 'features')\n"
        "loaded = mlops.load('train')\n",
        "use",
    )
    assert result.success, result.error_in_exec
    (run,) = all_runs(store)
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"features@v1", "train@v1"}
    operations = {
        name: {t.key: t.value for t in d.tags}["snapshot.operation"] for name, d in inputs.items()
    }
    assert operations == {"features@v1": "saved", "train@v1": "loaded"}


def test_resume_refuses_to_change_params_and_leaves_the_run_as_it_was(ip: Any, store: Path):
    from IPython.core.error import UsageError

    ip.user_ns["lr"] = 0.1
    body = "%%track --experiment exp --policy resume --params lr\npass\n"
    assert cell(ip, body, "c").success
    ip.user_ns["lr"] = 0.2
    result = cell(ip, body, "c")
    assert isinstance(result.error_in_exec, UsageError)
    assert "cannot change" in str(result.error_in_exec)
    run = only_run(store)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.1"}


TABLE_CONSTRAINT = ("CONSTRAINT ", "CHECK ", "FOREIGN KEY", "PRIMARY KEY", "UNIQUE ")


def normalised(sql: str | None) -> str | None:
    """A CREATE TABLE with its table constraints sorted: alembic's batch migrations recreate a
    table with its constraints in set order, which differs between two runs of the same
    migrations; the columns keep their order."""
    if sql is None or not sql.startswith("CREATE TABLE") or not sql.endswith(")"):
        return sql
    head, _, body = sql.partition("(")
    clauses = [part.strip() for part in body[:-1].split(", \n")]
    columns = [c for c in clauses if not c.startswith(TABLE_CONSTRAINT)]
    constraints = sorted(c for c in clauses if c.startswith(TABLE_CONSTRAINT))
    return f"{head}({', '.join(columns + constraints)})"


def schema(db: Path) -> list[tuple[str, str, str, str | None]]:
    import sqlite3

    with sqlite3.connect(db) as con:
        rows = [
            (kind, name, table, normalised(sql))
            for kind, name, table, sql in con.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
            )
        ]
        rows.append(
            ("alembic", "head", "", con.execute("SELECT * FROM alembic_version").fetchone()[0])
        )
    return rows


def test_a_new_store_has_exactly_the_schema_mlflows_own_creation_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Ours is copied from a template built once by MLflow's migrations; nothing may differ."""
    from mlflow.tracking import MlflowClient

    from jupyter_mlops.tracking.client import mlflow_client

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the template too is new
    ours, theirs, again = (tmp_path / name / "mlflow.db" for name in ("ours", "theirs", "again"))
    mlflow_client(f"sqlite:///{ours}")
    mlflow_client(f"sqlite:///{again}")  # from the cached template
    theirs.parent.mkdir()
    MlflowClient(f"sqlite:///{theirs}").search_experiments()  # MLflow creates it itself
    made, migrated = schema(ours), schema(theirs)
    assert made == migrated, (
        f"only ours: {sorted(set(made) - set(migrated))}; "
        f"only MLflow's: {sorted(set(migrated) - set(made))}"
    )
    assert schema(again) == migrated
    beside = sorted(p.name for p in ours.parent.iterdir() if p.name.startswith("mlflow.db."))
    assert beside == ["mlflow.db.lock"]  # nothing half-made is left beside it


def test_a_ctrl_c_inside_create_run_still_ends_the_run_killed(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SIGINT delivered while MLflow creates the run (the row exists, its id is not yet
    ours) is held until the id is known, so the run ends KILLED instead of RUNNING for ever."""
    import signal

    from mlflow import MlflowClient

    create_run = MlflowClient.create_run

    def create_then_interrupt(self: Any, *args: Any, **kwargs: Any) -> Any:
        run = create_run(self, *args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return run

    monkeypatch.setattr(MlflowClient, "create_run", create_then_interrupt)
    with pytest.raises(KeyboardInterrupt), mlops.track("cut"):
        pass
    monkeypatch.setattr(MlflowClient, "create_run", create_run)
    (run,) = all_runs(store)
    assert run.info.status == "KILLED"
