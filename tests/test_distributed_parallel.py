"""Model and pipeline parallelism from a cell: real torchrun, gloo on CPU, a tiny transformer.

Every split (FSDP2, tensor parallel, pipeline with GPipe and 1F1B, FSDP x TP on a 2-D mesh)
trains the model of tests/parallel_support.py for 5 steps and must give the single-process
losses to 1e-5 (fp32). Two launches: one job of 2 ranks runs the 2-rank splits one after the
other, one job of 4 ranks the 2-D mesh.
"""

from __future__ import annotations

import pytest

import jupyter_mlops as mlops
from jupyter_mlops.errors import MLOpsUsageError
from tests.parallel_support import STEPS, reference_losses

TOLERANCE = 1e-5

TWO_RANK_SPLITS = """
import torch, jupyter_mlops as mlops
from tests import parallel_support as ps

fsdp = mlops.distributed.fsdp(ps.make_model(), block_cls=ps.Block)
params = [p for p in fsdp.parameters()]
sharded = all(type(p).__name__ == "DTensor" for p in params)
fsdp_losses = ps.train_sharded(fsdp, rank, world_size)

tp = mlops.distributed.tensor_parallel(ps.make_model(), ps.TP_PLAN)
q = tp.layers[0].attn.q.weight
tp_local_rows = q.to_local().shape[0]
tp_losses = ps.train_sharded(tp, 0, 1)  # every TP rank sees the whole batch

x, _ = ps.batch(0)
pp_losses = {}
for schedule in ("gpipe", "1f1b"):
    pipe = mlops.distributed.pipeline(
        ps.make_model(), ["layers.1"], 4, example=x, loss_fn=ps.loss_fn, schedule=schedule
    )
    stage_params = sum(p.numel() for p in pipe.module.parameters())
    pp_losses[schedule] = ps.train_pipeline(pipe)
    mlops.distributed.mark_step()
try:
    mlops.distributed.pipeline(ps.make_model(), ["layers.0", "layers.1"], 4, example=x,
                               loss_fn=ps.loss_fn)
except mlops.MLOpsUsageError as exc:
    wrong_stages = str(exc)
result = dict(fsdp=fsdp_losses, tp=tp_losses, pp=pp_losses, sharded=sharded,
              tp_local_rows=tp_local_rows, stage_params=stage_params, wrong_stages=wrong_stages)
"""

MESH_2D = """
import jupyter_mlops as mlops
from tests import parallel_support as ps

mesh = mlops.distributed.mesh(dp=2, tp=2)
model = mlops.distributed.tensor_parallel(ps.make_model(), ps.TP_PLAN, mesh=mesh)
model = mlops.distributed.fsdp(model, block_cls=ps.Block, mesh=mesh["dp"])
q = model.layers[0].attn.q.weight
placements = [type(p).__name__ for p in q.placements]
losses = ps.train_sharded(model, mesh["dp"].get_local_rank(), 2)
try:
    mlops.distributed.mesh(dp=3)
except mlops.MLOpsUsageError as exc:
    bad_mesh = str(exc)
result = dict(losses=losses, placements=placements, mesh=mesh.shape, bad_mesh=bad_mesh)
"""


@pytest.fixture(scope="module")
def reference() -> list[float]:
    return reference_losses()


def assert_close(losses: list[float], reference: list[float]) -> None:
    assert len(losses) == STEPS
    worst = max(abs(a - b) for a, b in zip(losses, reference, strict=True))
    assert worst < TOLERANCE, (losses, reference)


def test_fsdp2_tensor_and_pipeline_parallel_match_one_process(reference: list[float]) -> None:
    out = mlops.distributed.run(TWO_RANK_SPLITS, n=2, sink=lambda line: None)["result"]
    assert out["sharded"]  # fully_shard really sharded the parameters...
    assert_close(out["fsdp"], reference)  # ...and still trains like one process
    assert out["tp_local_rows"] == 8  # q's 16 output rows split over 2 ranks
    assert_close(out["tp"], reference)
    assert_close(out["pp"]["gpipe"], reference)
    assert_close(out["pp"]["1f1b"], reference)
    whole = sum(p.numel() for p in reference_model_parameters())
    assert 0 < out["stage_params"] < whole  # rank 0 holds only the first stage
    assert out["wrong_stages"] == (
        "pipeline: 2 split point(s) make 3 stages but the group has 2 ranks; one stage per rank "
        "(-n 3)"
    )


def reference_model_parameters() -> list:
    from tests.parallel_support import make_model

    return list(make_model().parameters())


def test_fsdp_over_tensor_parallel_on_a_2d_mesh_of_4_ranks(reference: list[float]) -> None:
    out = mlops.distributed.run(MESH_2D, n=4, sink=lambda line: None)["result"]
    assert out["mesh"] == (2, 2)
    dp_placement, tp_placement = out["placements"]  # q is sharded on both mesh dimensions
    assert tp_placement == "Shard" and dp_placement in ("Shard", "_StridedShard")
    assert_close(out["losses"], reference)
    assert out["bad_mesh"] == (
        "mesh(dp=3): dp x tp must equal the world size 4; change -n or the mesh shape"
    )


def test_helpers_outside_a_cell_say_where_they_run() -> None:
    import torch

    with pytest.raises(MLOpsUsageError, match=r"^pipeline\(\) runs inside a %%distributed cell"):
        mlops.distributed.pipeline(torch.nn.Linear(2, 2), ["x"], 2, example=None, loss_fn=None)
    with pytest.raises(MLOpsUsageError, match=r"^tensor_parallel\(\) runs inside"):
        mlops.distributed.tensor_parallel(torch.nn.Linear(2, 2), {"": "colwise"})
    with pytest.raises(MLOpsUsageError, match=r"^save\(\) runs inside"):
        mlops.distributed.save({"m": torch.nn.Linear(2, 2)}, 1)
    with pytest.raises(MLOpsUsageError, match=r"^mark_step\(\) runs inside"):
        mlops.distributed.mark_step()
