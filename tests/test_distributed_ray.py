"""``%%distributed --executor ray``: the cell's ranks as a Ray Train TorchTrainer, for real.

Ray lives in ``.venv-ray`` (it sees this venv's packages through a .pth), so the scenarios run
in a process of that venv (tests/ray_scenarios.py, an IPython shell with the extension loaded)
against the local Ray head the ``ray_head`` fixture started on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.engines_compute import RAY_VENV, RayHead

REPO = Path(__file__).resolve().parent.parent
SCENARIOS_TIMEOUT_S = 540


@pytest.fixture(scope="module")
def scenarios(ray_head: RayHead, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("ray-home")
    done = subprocess.run(
        [str(RAY_VENV / "bin" / "python"), str(REPO / "tests" / "ray_scenarios.py"),
         ray_head.address, str(home)],
        env={**os.environ, **ray_head.env, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=SCENARIOS_TIMEOUT_S,
    )  # fmt: skip
    lines = [
        json.loads(line[9:]) for line in done.stdout.splitlines() if line.startswith("SCENARIO ")
    ]
    found = {line.pop("scenario"): line for line in lines}
    assert len(found) == 3, (
        f"scenarios did not all report:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return found


def test_ray_runs_the_cell_on_every_rank_and_pulls_rank_0(scenarios: dict[str, Any]) -> None:
    run = scenarios["succeeds"]
    assert "error" not in run, run.get("error")
    assert run["state"] == "ok"
    assert run["result"] == [3.0, 2, 42]  # all_reduce of 1 + 2, world_size, pushed a * 2
    assert "[rank 0] hello from 0 of 2 on cpu, a=21" in run["shown"]
    assert all(line.startswith("[rank 0]") for line in run["shown"])  # rank 0 only, by default
    assert "hello from 1 of 2 on cpu, a=21" in run["rank1_log"]


def test_a_failing_ray_rank_raises_with_its_traceback(scenarios: dict[str, Any]) -> None:
    failed = scenarios["fails"]
    assert "error" not in failed, failed.get("error")
    assert failed["rank"] == 1
    assert "ValueError: rank one is broken" in failed["message"]
    assert 'File "<cell>", line 3' in failed["message"]


def test_interrupt_cancels_the_ray_job_and_leaves_no_actor(scenarios: dict[str, Any]) -> None:
    stopped = scenarios["interrupted"]
    assert "error" not in stopped, stopped.get("error")
    assert "cancelled, all ranks stopped" in stopped["outcome"]
    assert stopped["actors_left"] == []
    assert stopped["state"] == "cancelled"
