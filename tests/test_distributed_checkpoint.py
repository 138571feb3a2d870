"""Sharded checkpoints, resumable jobs and registering a checkpoint (real torchrun, gloo, CPU).

One tracked job of 2 FSDP2 ranks trains the tiny transformer with Adam, saving a DCP
checkpoint after every step. In its first attempt the ranks wait after step 2 and the test
SIGKILLs rank 1; torchrun (``--max-restarts 1``) restarts both, the cell resumes from step 2's
checkpoint and the loss curve must be the uninterrupted one. The module shares that job: the
other tests read its checkpoints, tracked metrics and artifacts, and register it.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.distributed import checkpoint
from jupyter_mlops.distributed.results import DistributedResult
from jupyter_mlops.errors import MLOpsUsageError
from jupyter_mlops.tracking import active
from jupyter_mlops.tracking.client import mlflow_client
from tests.parallel_support import STEPS, make_model, predict, reference_losses

KILL_AFTER_STEP = 2
RESUMABLE = f"""
import time, torch, jupyter_mlops as mlops
from tests import parallel_support as ps

model = mlops.distributed.fsdp(ps.make_model(), block_cls=ps.Block)
optim = ps.make_optimizer(model, adam=True)
state = {{"model": model, "optim": optim, "losses": []}}
last = mlops.distributed.load(state)
print(f"attempt {{restart}} resumes after step {{last}}", flush=True)
for step in range(0 if last is None else last + 1, ps.STEPS):
    state["losses"] = state["losses"] + [ps.sharded_step(model, optim, step, rank, world_size)]
    mlops.distributed.save(state, step, keep=3)
    mlops.distributed.mark_step()
    if restart == 0 and step == {KILL_AFTER_STEP}:
        print("waiting to be killed", flush=True)
        while True:
            time.sleep(0.1)
losses = state["losses"]
prediction = ps.predict(model)
"""


class Killer:
    """Sends SIGKILL to rank 1 once rank 0 says the first attempt is waiting."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.killed: list[int] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if line == "[rank 0] waiting to be killed" and not self.killed:
            (job_dir,) = (current_settings().home / "jobs").iterdir()
            entry = json.loads((job_dir / "pids" / "rank-1.json").read_text())
            os.kill(entry["pid"], signal.SIGKILL)
            self.killed.append(entry["pid"])


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("checkpoint-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        settings = current_settings()
        client = mlflow_client(settings.tracking_uri)
        run_id = client.create_run(client.create_experiment("resume")).info.run_id
        tracked = active.ActiveRun(run_id, settings.tracking_uri)
        killer = Killer()
        active.push(tracked)
        try:
            out = mlops.distributed.run(
                RESUMABLE, n=2, max_restarts=1, pull="losses,prediction", sink=killer
            )
        finally:
            active.pop(tracked)
        yield out, killer, run_id, home


def test_a_killed_rank_restarts_and_the_cell_resumes_the_same_loss_curve(resumed: Any) -> None:
    out, killer, _, _ = resumed
    assert len(killer.killed) == 1
    uninterrupted = reference_losses(adam=True)
    assert len(out["losses"]) == STEPS
    worst = max(abs(a - b) for a, b in zip(out["losses"], uninterrupted, strict=True))
    assert worst < 1e-5, (out["losses"], uninterrupted)
    assert "[rank 0] attempt 0 resumes after step None" in killer.lines
    assert f"[rank 0] attempt 1 resumes after step {KILL_AFTER_STEP}" in killer.lines
    # The notebook said why it restarted: which rank died and by which signal.
    (restart,) = out.restarts
    assert restart.startswith(
        "restart 1 of 1: rank 1 of 2 was killed by signal 9 (SIGKILL) without raising a Python "
        "error (attempt 0 of job "
    ), restart
    assert f"[jupyter-mlops] {restart}" in killer.lines


def test_checkpoints_are_complete_kept_and_tracked(resumed: Any) -> None:
    out, _, run_id, home = resumed
    root = out.job_dir / checkpoint.CHECKPOINTS_DIR
    steps = [step for step, _ in checkpoint.complete_steps(root)]
    assert steps == [2, 3, 4]  # keep=3
    meta = json.loads((root / "step-000000004" / checkpoint.META_FILE).read_text())
    assert meta["world_size"] == 2 and meta["modules"] == ["model"]
    assert any(p.suffix == ".distcp" for p in (root / "step-000000004").iterdir())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        settings = current_settings()
        client = mlflow_client(settings.tracking_uri)
        folder = f"distributed/{out.job_id}/checkpoints"
        logged = {Path(a.path).name for a in client.list_artifacts(run_id, folder)}
        assert {"step-000000003", "step-000000004"} <= logged
        metrics = client.get_run(run_id).data.metrics
        assert metrics["distributed.rank0.step_time_s"] > 0
        assert metrics["distributed.rank1.memory_mb"] > 0
        history = client.get_metric_history(run_id, "distributed.rank1.step_time_s")
        assert [m.step for m in history] == [STEPS - KILL_AFTER_STEP - 1]  # the last attempt
        status = mlops.distributed.status(settings=settings)
        (row,) = status.jobs
        assert row.state == "ok" and row.restarts == 1
        assert [r.rank for r in row.ranks] == [0, 1]
        assert all(r.memory_kind == "rss peak" and r.memory_mb > 0 for r in row.ranks)
        assert "restarts=1" in repr(status) and "ms/step" in repr(status)


def test_register_consolidates_the_checkpoint_into_a_model_that_predicts_alike(
    resumed: Any, ip: Any
) -> None:
    out, _, run_id, home = resumed
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        ip.user_ns.update(job=out, make_model=make_model)
        version = ip.run_line_magic(
            "register", f"job --name tiny-dcp --factory make_model --run {run_id}"
        )
        assert (version.name, version.version, version.flavor) == ("tiny-dcp", 1, "pytorch")
        loaded = mlops.load_model("tiny-dcp/1", flavor="pytorch")
        predicted = predict(loaded)
    trained = out["prediction"]
    np.testing.assert_allclose(predicted.numpy(), trained.numpy(), rtol=1e-5, atol=1e-6)
    untrained = predict(make_model())
    assert not torch.allclose(untrained, trained, atol=1e-3)  # the weights really came along


def test_consolidate_refuses_what_it_cannot_load(resumed: Any, tmp_path: Path) -> None:
    out, _, _, _ = resumed
    with pytest.raises(MLOpsUsageError, match="no complete checkpoint there"):
        checkpoint.consolidate(tmp_path, make_model)
    with pytest.raises(MLOpsUsageError, match="the factory returned a int; it must build"):
        checkpoint.consolidate(out, lambda: 3)
    with pytest.raises(
        MLOpsUsageError,
        match=r"does not match checkpoint step-000000004 \(RuntimeError: Missing key in "
        r"checkpoint state_dict: model.weight.\); build the same",
    ):
        checkpoint.consolidate(out, lambda: torch.nn.Linear(2, 2))
    assert isinstance(out, DistributedResult)
    model = checkpoint.consolidate(out.job_dir / "checkpoints" / "step-000000002", make_model)
    assert not model.training


PIPELINE_CHECKPOINT = """
import torch, jupyter_mlops as mlops
from tests import parallel_support as ps

x, _ = ps.batch(0)
pipe = mlops.distributed.pipeline(ps.make_model(), ["layers.1"], 4, example=x, loss_fn=ps.loss_fn)
ps.train_pipeline(pipe, steps=2)
torch.save(pipe.module.state_dict(), f"{out}/stage-{rank}.pt")  # what this rank's stage holds
mlops.distributed.save({"model": pipe.module}, 0)
"""


def test_a_pipeline_parallel_checkpoint_consolidates_into_the_whole_model(tmp_path: Path) -> None:
    """Each rank saves only its stage (the stage modules keep the model's own parameter names),
    and the checkpoint of both fills the whole untrained model with the trained weights."""
    out = mlops.distributed.run(
        PIPELINE_CHECKPOINT, n=2, push={"out": str(tmp_path)}, sink=lambda line: None
    )
    whole = checkpoint.consolidate(out, make_model).state_dict()
    untrained = make_model().state_dict()
    stages = [torch.load(tmp_path / f"stage-{rank}.pt") for rank in (0, 1)]
    assert stages[0].keys().isdisjoint(stages[1].keys())
    assert stages[0].keys() | stages[1].keys() == whole.keys()
    for stage in stages:
        assert all(torch.equal(whole[key], trained) for key, trained in stage.items())
        assert any(not torch.equal(untrained[key], trained) for key, trained in stage.items())
