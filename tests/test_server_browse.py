"""The panel's experiment list and a run's artifacts (a failed run's error), through jp_fetch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

import jupyter_mlops as mlops
from jupyter_mlops.config import MLOps
from tests.notebooks import notebook

NOTEBOOK = "project/nb.ipynb"


@pytest.fixture
def failed_run(jp_root_dir: Path, tmp_path: Path) -> str:
    """A run of experiment ``nb`` that failed, with a text, a binary and a large artifact."""
    project = jp_root_dir / "project"
    (project / ".mlops").mkdir(parents=True)
    notebook(path=project / "nb.ipynb")
    os.chdir(project)
    MLOps.instance().experiment = "nb"
    (tmp_path / "weights.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "big.txt").write_text("x" * 300_000)
    with pytest.raises(ValueError), mlops.track("broken"):
        mlops.log_artifact(tmp_path / "weights.bin")
        mlops.log_artifact(tmp_path / "big.txt")
        raise ValueError("batch 7 has no rows")
    with mlops.track("other", experiment="second"):
        pass
    (run,) = mlops.runs("nb").itertuples()
    return str(run.run_id)


async def get(jp_fetch: Any, *route: str, **params: str) -> dict[str, Any]:
    response = await jp_fetch("jupyter-mlops", "api", *route, params={"path": NOTEBOOK, **params})
    return dict(json.loads(response.body))


async def test_a_failed_runs_error_and_artifacts_can_be_read(
    jp_fetch: Any, failed_run: str
) -> None:
    detail = await get(jp_fetch, "runs", failed_run)
    assert detail["run"]["status"] == "FAILED"
    assert "error.txt" in detail["artifacts"]
    error = await get(jp_fetch, "runs", failed_run, "artifact", file="error.txt")
    assert "ValueError: batch 7 has no rows" in error["text"] and error["note"] is None
    binary = await get(jp_fetch, "runs", failed_run, "artifact", file="weights.bin")
    assert binary["text"] is None and binary["note"].startswith("binary file")
    big = await get(jp_fetch, "runs", failed_run, "artifact", file="big.txt")
    assert big["text"] is None and big["size"] == 300_000 and "too large" in big["note"]

    for wrong in ("../../../etc/passwd", "missing.txt", ""):
        with pytest.raises(HTTPClientError) as caught:
            await get(jp_fetch, "runs", failed_run, "artifact", file=wrong)
        assert caught.value.code == 400
        message = json.loads(caught.value.response.body)["message"]
        assert message.startswith(f"run {failed_run[:8]} has no artifact")


async def test_experiments_lists_the_stores_experiments_shown_one_first(
    jp_fetch: Any, failed_run: str
) -> None:
    listed = await get(jp_fetch, "experiments")
    assert listed["current"] == "nb"
    assert {"nb", "second"} <= {e["name"] for e in listed["experiments"]}
    chosen = await get(jp_fetch, "experiments", experiment="not-yet")
    assert chosen["current"] == "not-yet" and chosen["experiments"][0]["name"] == "not-yet"
