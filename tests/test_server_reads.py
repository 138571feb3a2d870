"""The panel reads what the magics read: gate history from MLflow, Compare keyed by run id."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

import jupyter_mlops as mlops
from jupyter_mlops import records
from jupyter_mlops.registry.errors import GateWarning
from tests.server_support import identity, populate, project_settings

NOTEBOOK = "project/train.ipynb"


@pytest.fixture(scope="module")
def filled_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("server-reads") / "project"
    populate(project)
    return project


@pytest.fixture
def project(filled_project: Path, jp_root_dir: Path) -> Path:
    return Path(shutil.copytree(filled_project, jp_root_dir / "project"))


def fresh_model(project: Path, name: str) -> None:
    """Two versions of a model of this test's own (a copied project shares its source's artifact
    folders, so decisions on the populated models would be seen by every copy)."""
    with project_settings(project):
        for accuracy in (0.8, 0.9):
            with mlops.track(f"{name}-fit"):
                mlops.log(val_acc=accuracy)
            mlops.register(identity, name)


async def get(jp_fetch: Any, route: str, params: list[tuple[str, str]]) -> dict[str, Any]:
    response = await jp_fetch(
        "jupyter-mlops", "api", *route.split("/"), params=[("path", NOTEBOOK), *params]
    )
    assert response.code == 200
    return json.loads(response.body)


async def test_gate_history_is_mlflows_as_lineage_shows_it_with_reports_deleted(
    jp_fetch: Any, project: Path
) -> None:
    fresh_model(project, "gated")
    with project_settings(project), warnings.catch_warnings():
        warnings.simplefilter("ignore", GateWarning)
        mlops.promote("gated/1", "champion", "metrics.val_acc >= 0.5")
        mlops.promote("gated/2", "champion", "metrics.val_acc >= 0.99", warn_only=True)
        mlops.promote("gated/2", "staging", "metrics.val_acc >= 0.5")
    reports = project / ".mlops" / records.REPORTS_DIRNAME
    assert len(list(reports.glob("gate-gated-*.json"))) == 3  # still written, for CI
    shutil.rmtree(reports)

    detail = await get(jp_fetch, "models/gated", [])
    panel = {
        v["version"]: [(g["at"], g["decision"], g.get("alias")) for g in v["gates"]]
        for v in detail["versions"]
    }
    with project_settings(project):
        shown: dict[int, list[tuple[str, str, str | None]]] = {}
        for number in (1, 2):
            for node in mlops.lineage(f"gated/{number}").of_kind("gate"):
                if node.attrs["version"] == number:
                    shown.setdefault(number, []).append(
                        (node.attrs["at"], node.attrs["decision"], node.attrs["alias"])
                    )
    newest_first = {n: sorted(found, reverse=True) for n, found in shown.items()}
    assert panel == newest_first
    assert [d for _, d, _ in panel[2]] == ["promoted", "rejected"]
    assert [d for _, d, _ in panel[1]] == ["promoted"]


async def test_compare_keeps_two_runs_with_one_name_apart(jp_fetch: Any, project: Path) -> None:
    ids = []
    with project_settings(project):
        for scale in (1.0, 2.0):
            with mlops.track("rerun", params={"scale": scale}) as run:
                for step in range(3):
                    mlops.log(step=step, loss=scale * (step + 1))
            ids.append(run.run_id)
        expected = mlops.compare(*ids)

    got = await get(jp_fetch, "compare", [("run", ids[0]), ("run", ids[1])])
    assert [r["run_id"] for r in got["runs"]] == ids
    assert [r["label"] for r in got["runs"]] == expected.labels
    assert got["runs"][0]["label"] != got["runs"][1]["label"]
    assert got["curves"]["loss"] == {
        ids[0]: {"steps": [0, 1, 2], "values": [1.0, 2.0, 3.0]},
        ids[1]: {"steps": [0, 1, 2], "values": [2.0, 4.0, 6.0]},
    }
    assert got["metrics"]["loss"] == {ids[0]: 3.0, ids[1]: 6.0}
    assert got["params"]["scale"] == {ids[0]: "1.0", ids[1]: "2.0"}
    assert got["param_differs"]["scale"] is True and got["metric_differs"]["loss"] is True


@pytest.mark.parametrize(
    ("runs", "code", "message"),
    [
        (["0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"], 404, "no run"),
        (["0123456789abcdef0123456789abcdef"], 400, "at least two run ids"),
        (["../etc/passwd", "x"], 400, "invalid run id"),
        ([f"{i:032x}" for i in range(21)], 400, "at most 20"),
    ],
)
async def test_compare_refuses_what_it_cannot_answer(
    jp_fetch: Any, project: Path, runs: list[str], code: int, message: str
) -> None:
    with pytest.raises(HTTPClientError) as info:
        await get(jp_fetch, "compare", [("run", r) for r in runs])
    assert info.value.code == code
    assert message in json.loads(info.value.response.body)["message"]


async def test_two_homes_on_one_tracking_store_show_the_same_gate_history(
    jp_fetch: Any, project: Path, jp_root_dir: Path
) -> None:
    other = jp_root_dir / "other"
    (other / ".mlops").mkdir(parents=True)
    shared = project / ".mlops" / "mlflow.db"
    (other / "pyproject.toml").write_text(
        f'[tool.jupyter-mlops]\ntracking_uri = "sqlite:///{shared}"\n', encoding="utf-8"
    )
    fresh_model(project, "shared")
    with project_settings(project):
        mlops.promote("shared/2", "staging", "metrics.val_acc >= 0.5")

    here = await get(jp_fetch, "models/shared", [])
    response = await jp_fetch("jupyter-mlops", "api", "models", "shared", params={"path": "other"})
    there = json.loads(response.body)
    assert not (other / ".mlops" / records.REPORTS_DIRNAME).exists()  # nothing written there
    assert there["versions"] == here["versions"]
    assert [g["alias"] for g in there["versions"][0]["gates"]] == ["staging"]
