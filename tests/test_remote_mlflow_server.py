"""Tracking, registry, gates, lineage and the panel's REST routes over HTTP against a real
``mlflow server --serve-artifacts`` (started once per session by tests/engines.py).

Every test works in experiments and models named after itself on the one server, and reads what
landed with a plain ``MlflowClient`` (and in the server's own artifact folder), not through us.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import jupyter_mlops as mlops
from jupyter_mlops.errors import GateFailed
from tests.engines import Engine
from tests.server_support import customers, identity, populate


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def remote(
    ip: Any, mlflow_server: Engine, isolated_store: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """This test's settings point at the server; the client returned reads it independently."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLOPS_HOME", str(isolated_store / ".mlops"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("MLOPS_EXPERIMENT", unique("exp"))
    ip.user_ns.update(mlops=mlops, mlflow=__import__("mlflow"))
    yield MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    assert not (isolated_store / ".mlops" / "mlflow.db").exists(), "a local store was made"


def server_artifacts(server: Engine) -> Path:
    return server.log.parent / "artifacts"


def proxied_file(server: Engine, artifact_uri: str, path: str) -> Path:
    """Where the server keeps ``path`` of a run whose artifact root is ``artifact_uri``."""
    assert artifact_uri.startswith("mlflow-artifacts:/"), artifact_uri
    return server_artifacts(server) / artifact_uri.split(":/", 1)[1].lstrip("/") / path


def test_a_tracked_cell_records_everything_on_the_server(
    ip: Any, remote: Any, mlflow_server: Engine
) -> None:
    ip.user_ns["lr"] = 0.25
    ip.run_cell_magic(
        "track",
        "remote-cell --params lr",
        "import mlflow\n"
        "for step in range(30):\n"
        "    mlops.log(step=step, loss=1.0 / (step + 1))\n"
        "mlops.log_params(batch=16)\n"
        "mlflow.log_metric('fluent', 7.0)\n"
        "seen = mlflow.active_run().info.run_id\n",
    )
    run = remote.get_run(ip.user_ns["seen"])
    assert run.info.status == "FINISHED" and run.info.run_name == "remote-cell"
    assert run.data.params["lr"] == "0.25" and run.data.params["batch"] == "16"
    assert run.data.metrics["fluent"] == 7.0
    history = remote.get_metric_history(run.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(s, 1.0 / (s + 1)) for s in range(30)]
    # The cell source went through the server's artifact proxy into its own folder.
    cell = proxied_file(mlflow_server, run.info.artifact_uri, "cell.py")
    assert "mlops.log(step=step" in cell.read_text()
    listed = [a.path for a in remote.list_artifacts(run.info.run_id)]
    assert "cell.py" in listed


def test_a_failing_cell_ends_failed_with_its_traceback_on_the_server(
    ip: Any, remote: Any, mlflow_server: Engine
) -> None:
    result = ip.run_cell("%%track broken\nseen = mlflow.active_run().info.run_id\n1 / 0\n")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    run = remote.get_run(ip.user_ns["seen"])
    assert run.info.status == "FAILED"
    assert "ZeroDivisionError" in run.data.tags["mlops.error"]
    error = proxied_file(mlflow_server, run.info.artifact_uri, "error.txt")
    assert "1 / 0" in error.read_text()


def test_register_promote_with_gates_and_lineage_over_http(
    ip: Any, remote: Any, mlflow_server: Engine
) -> None:
    model = unique("churn")
    train = unique("train")
    ip.user_ns.update(frame=customers(0), identity=identity)
    ip.run_cell_magic(
        "track",
        "fit",
        f"mlops.snapshot(frame, {train!r})\nmlops.log(val_acc=0.8)\n",
    )
    version = ip.run_line_magic("register", f"identity --name {model}")
    assert version.version == 1
    stored = remote.get_model_version(model, "1")
    assert stored.source.startswith("models:/") or stored.source.startswith("mlflow-artifacts:")
    with pytest.raises(GateFailed, match=r"metrics\.val_acc"):
        ip.run_line_magic("promote", f'{model} --to champion --require "metrics.val_acc >= 0.9"')
    assert "champion" not in remote.get_registered_model(model).aliases
    passed = ip.run_line_magic(
        "promote", f'{model} --to champion --require "metrics.val_acc >= 0.5" --reason ok'
    )
    assert passed and remote.get_model_version_by_alias(model, "champion").version == "1"

    # The model's files came back through the proxy: a fresh load by alias answers.
    loaded = mlops.load_model(f"{model}@champion")
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    assert loaded.predict(frame).equals(frame)

    found = mlops.lineage(f"{model}@champion")
    labels = {kind: [n.label for n in found.of_kind(kind)] for kind in ("snapshot", "run", "gate")}
    assert labels["snapshot"] == [f"{train}@v1"] and labels["run"] == ["fit"]
    assert sorted(labels["gate"]) == [f"{model} v1 -> champion"] * 2
    decisions = sorted(n.attrs["decision"] for n in found.decisions)
    assert decisions == ["promoted", "rejected"]


def test_a_drift_report_is_logged_through_the_proxy(remote: Any, mlflow_server: Engine) -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 2000)})
    current = pd.DataFrame({"x": rng.normal(1, 1, 2000)})
    with mlops.track("drifting") as run:
        result = mlops.drift(reference, current)
    assert result.drifted
    stored = remote.get_run(run.run_id)
    reports = [a.path for a in remote.list_artifacts(run.run_id, "drift")]
    html = [p for p in reports if p.endswith(".html")]
    assert html, reports
    page = proxied_file(mlflow_server, stored.info.artifact_uri, html[0]).read_text()
    assert "<html" in page.lower() and "cdn." not in page


# --- the panel's REST routes, for a project whose pyproject.toml names the server -------------

NOTEBOOK = "project/train.ipynb"


@pytest.fixture(scope="module")
def remote_project(mlflow_server: Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """server_support's project (runs, snapshots, model churn, a drift report) on the server."""
    project = tmp_path_factory.mktemp("remote-api") / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        f'[tool.jupyter-mlops]\ntracking_uri = "{mlflow_server.url}"\n'
    )
    populate(project)
    assert not (project / ".mlops" / "mlflow.db").exists()
    return project


@pytest.fixture
def project(remote_project: Path, jp_root_dir: Path) -> Path:
    import shutil

    return Path(shutil.copytree(remote_project, jp_root_dir / "project"))


async def get(jp_fetch: Any, route: str, **params: Any) -> Any:
    params.setdefault("path", NOTEBOOK)
    response = await jp_fetch("jupyter-mlops", "api", *route.split("/"), params=params)
    assert response.code == 200
    return json.loads(response.body)


async def test_the_panels_routes_read_the_server(
    jp_fetch: Any, project: Path, mlflow_server: Engine
) -> None:
    store = await get(jp_fetch, "store")
    assert store["tracking_uri"] == mlflow_server.url
    page = await get(jp_fetch, "runs", sort="start_time")
    names = [r["name"] for r in page["runs"]]
    assert names == ["baseline", "wider", "drift-check"]
    detail = await get(jp_fetch, f"runs/{page['runs'][0]['run_id']}")
    assert detail["inputs"] == ["customers@v1"]
    assert detail["curves"]["val_acc"]["steps"] == [0, 1, 2, 3, 4]
    (gate,) = [a for a in detail["artifacts"] if a.startswith("gates/")]  # the v1 promotion
    decision = await get(jp_fetch, f"runs/{page['runs'][0]['run_id']}/artifact", file=gate)
    assert json.loads(decision["text"])["decision"] == "promoted"
    models = await get(jp_fetch, "models/churn")
    assert models["aliases"]["champion"] == 1
    assert models["versions"][1]["gates"][0]["decision"] == "promoted"
    drift = await get(jp_fetch, "drift")
    (report,) = drift["reports"]
    assert report["share_drifted"] == pytest.approx(1 / 3)
    opened = await get(jp_fetch, f"drift/{report['run_id']}/{report['report']}")
    assert "customers@v2" in opened["html"]
    lineage = await get(jp_fetch, "lineage", ref="churn@champion")
    assert {n["kind"] for n in lineage["nodes"]} >= {"snapshot", "run", "model", "gate"}


async def test_the_panels_promote_moves_the_alias_on_the_server(
    jp_fetch: Any, project: Path, mlflow_server: Engine
) -> None:
    from mlflow.tracking import MlflowClient

    response = await jp_fetch(
        "jupyter-mlops",
        "api",
        "models",
        "churn",
        "promote",
        method="POST",
        params={"path": NOTEBOOK},
        body=json.dumps({"alias": "staging", "require": ["metrics.val_acc >= 0.9"]}),
    )
    answer = json.loads(response.body)
    assert answer["passed"] is True and answer["moved"] is True and answer["version"] == 2
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    assert client.get_model_version_by_alias("churn", "staging").version == "2"
