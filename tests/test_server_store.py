"""The server extension's store route, through a real Jupyter server (pytest-jupyter's jp_fetch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError


async def get_store(jp_fetch: Any, path: str) -> dict[str, Any]:
    response = await jp_fetch("jupyter-mlops", "api", "store", params={"path": path})
    assert response.code == 200
    return json.loads(response.body)


async def test_store_for_a_notebook_folder(jp_fetch: Any, jp_root_dir: Path) -> None:
    (jp_root_dir / "project" / ".mlops").mkdir(parents=True)
    (jp_root_dir / "project" / "nbs").mkdir()
    (jp_root_dir / "project" / "nbs" / "train.ipynb").write_text("{}")
    info = await get_store(jp_fetch, "project/nbs/train.ipynb")
    home = jp_root_dir.resolve() / "project" / ".mlops"
    assert info["home"] == str(home)
    assert info["home_exists"] is True
    assert info["tracking_uri"] == f"sqlite:///{home}/mlflow.db"
    assert info["snapshot_store"] == str(home / "snapshots")
    assert info["experiment"] == "train"
    assert info["notebook"] == "project/nbs/train.ipynb"
    assert info["sources"]["home"] == "found"


async def test_store_is_not_created_by_browsing(jp_fetch: Any, jp_root_dir: Path) -> None:
    info = await get_store(jp_fetch, "")
    assert info["home"] == str(jp_root_dir.resolve() / ".mlops")
    assert info["home_exists"] is False
    assert info["experiment"] == "Default"
    assert not (jp_root_dir / ".mlops").exists()


async def test_pyproject_settings_apply_to_the_server(jp_fetch: Any, jp_root_dir: Path) -> None:
    (jp_root_dir / "pyproject.toml").write_text(
        '[tool.jupyter-mlops]\nhome = "shared-store"\nexperiment = "churn"\n'
    )
    info = await get_store(jp_fetch, "")
    assert info["home"] == str(jp_root_dir.resolve() / "shared-store")
    assert info["experiment"] == "churn"


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        ("../outside", 400, "leaves the server root"),
        ("/etc", 400, "relative to the server root"),
        ("missing/nb.ipynb", 404, "no such file or folder"),
    ],
)
async def test_bad_paths_are_refused(jp_fetch: Any, path: str, code: int, message: str) -> None:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("jupyter-mlops", "api", "store", params={"path": path})
    assert info.value.code == code
    assert message in json.loads(info.value.response.body)["message"]


async def test_bad_config_is_a_400_with_the_reason(jp_fetch: Any, jp_root_dir: Path) -> None:
    (jp_root_dir / "pyproject.toml").write_text('[tool.jupyter-mlops]\ngate_mode = "later"\n')
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("jupyter-mlops", "api", "store", params={"path": ""})
    assert info.value.code == 400
    assert "choose one of: raise, warn" in json.loads(info.value.response.body)["message"]


async def test_requests_without_a_token_are_refused(jp_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "jupyter-mlops", "api", "store", headers={"Authorization": ""}, params={"path": ""}
        )
    assert info.value.code == 403
