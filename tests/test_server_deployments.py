"""``GET deployments`` and ``POST deployments/<name>/stop`` over a real endpoint process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_mlops.serving.deployments import list_deployments
from jupyter_mlops.serving.launch import serve, stop
from tests.process_support import survivors
from tests.serving_support import (
    TELLING_ROW,
    post,
    register_two_versions,
    split_body,
    store_settings,
)

REQUESTS = 3


async def deployments(jp_fetch: Any, path: str = "project") -> list[dict[str, Any]]:
    response = await jp_fetch("jupyter-mlops", "api", "deployments", params={"path": path})
    assert response.code == 200
    found: list[dict[str, Any]] = json.loads(response.body)["deployments"]
    return found


async def test_a_live_endpoint_is_listed_with_its_counters_and_stopped_by_the_route(
    jp_fetch: Any, jp_root_dir: Path, template_store: Path
) -> None:
    import asyncio

    project = jp_root_dir / "project"
    project.mkdir()
    settings = store_settings(template_store, project)
    assert await deployments(jp_fetch) == []  # a store without endpoints: an empty list
    register_two_versions(settings, "churn")
    deployment = serve(settings, "churn@prod")
    try:
        for _ in range(REQUESTS):
            assert post(deployment.url, split_body([TELLING_ROW]))[0] == 200
        listed: list[dict[str, Any]] = []
        for _ in range(200):  # each worker writes its counters about once a second
            listed = await deployments(jp_fetch)
            if listed and listed[0]["requests"] >= REQUESTS:
                break
            await asyncio.sleep(0.1)
        [shown] = listed
        assert shown["name"] == "churn@prod"
        assert (shown["model"], shown["alias"], shown["version"]) == ("churn", "prod", "1")
        assert shown["requests"] == REQUESTS and shown["errors"] == 0
        assert shown["alive"] is True and shown["pid"] == deployment.pid
        assert shown["url"] == deployment.url
        assert shown["p95_ms"] is not None and shown["p95_ms"] > 0

        with pytest.raises(HTTPClientError) as missing:
            await jp_fetch(
                "jupyter-mlops", "api", "deployments", "nope@prod", "stop",
                method="POST", body=b"", params={"path": "project"},
            )  # fmt: skip
        assert missing.value.code == 404
        assert "no endpoint named 'nope@prod'" in json.loads(missing.value.response.body)["message"]

        response = await jp_fetch(
            "jupyter-mlops", "api", "deployments", "churn@prod", "stop",
            method="POST", body=b"", params={"path": "project"},
        )  # fmt: skip
        assert json.loads(response.body) == {"deployments": []}
        assert survivors([deployment.pid], 10.0) == []
    finally:
        if any(d.alive for d in list_deployments(settings)):
            stop(settings, deployment.name)
