"""``pipeline``: a model cut into stages, one per rank, on ``torch.distributed.pipelining``.

The model is traced once (``torch.distributed.pipelining.pipeline`` with a ``SplitPoint`` at the
beginning of each named submodule), every rank builds its own ``PipelineStage`` and a GPipe or
1F1B schedule runs the microbatches. The returned :class:`Pipeline` keeps PyTorch's objects in
plain sight (``stage``, ``schedule``, ``module``): ``step`` is a convenience over
``schedule.step`` that also gives every rank the batch loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import MLOpsUsageError
from .helpers import rank_device, require_group

SCHEDULES = ("gpipe", "1f1b")


@dataclass
class Pipeline:
    """This rank's stage of a pipelined model and the schedule that drives it.

    ``module`` is this rank's part of the model (build the optimizer on its parameters),
    ``stage`` the ``PipelineStage``, ``schedule`` the ``ScheduleGPipe``/``Schedule1F1B``.
    """

    module: Any
    stage: Any
    schedule: Any
    stage_index: int
    num_stages: int
    microbatches: int
    group: Any = None

    @property
    def is_first(self) -> bool:
        return self.stage_index == 0

    @property
    def is_last(self) -> bool:
        return self.stage_index == self.num_stages - 1

    def step(self, *inputs: Any, target: Any = None) -> float:
        """One forward and backward over ``microbatches`` microbatches; the batch's mean loss.

        The first stage takes ``inputs``, the last ``target`` (pass both on every rank: each
        stage uses its own). Gradients are scaled by the number of microbatches, so with a
        mean loss they equal the full batch's; the loss is broadcast from the last stage.
        """
        import torch
        import torch.distributed as dist

        losses: list[Any] = []
        args = inputs if self.is_first else ()
        if self.is_last:
            self.schedule.step(*args, target=target, losses=losses)
        else:
            self.schedule.step(*args)
        device = rank_device()
        value = torch.zeros((), device=device, dtype=torch.float64)
        if self.is_last:
            value += torch.stack([loss.detach().double() for loss in losses]).mean()
        last = (
            dist.get_global_rank(self.group, self.num_stages - 1)
            if self.group
            else (self.num_stages - 1)
        )
        dist.broadcast(value, src=last, group=self.group)
        return float(value)


def split_spec(split_points: str | Sequence[str]) -> dict[str, Any]:
    from torch.distributed.pipelining import SplitPoint

    points = [split_points] if isinstance(split_points, str) else list(split_points)
    if not points or not all(isinstance(p, str) and p for p in points):
        raise MLOpsUsageError(
            "pipeline(split_points=...): give the submodule names where a new stage begins, "
            "e.g. ['layers.2'] for two stages"
        )
    return {point: SplitPoint.BEGINNING for point in points}


def pipeline(
    model: Any,
    split_points: str | Sequence[str],
    microbatches: int,
    *,
    example: Any,
    loss_fn: Callable[[Any, Any], Any],
    schedule: str = "gpipe",
    group: Any = None,
) -> Pipeline:
    """Cut ``model`` before each of ``split_points`` and give this rank its stage.

    ``example`` is one full batch of input (its first dimension must divide into
    ``microbatches``); ``loss_fn(output, target)`` runs on the last stage per microbatch;
    ``schedule`` is "gpipe" or "1f1b". There is one stage per rank of ``group`` (default every
    rank), so ``len(split_points) + 1`` must equal its size.
    """
    import torch
    from torch.distributed.pipelining import Schedule1F1B, ScheduleGPipe
    from torch.distributed.pipelining import pipeline as trace

    dist = require_group("pipeline")
    spec = split_spec(split_points)
    if schedule not in SCHEDULES:
        raise MLOpsUsageError(
            f"pipeline(schedule={schedule!r}): choose one of {', '.join(SCHEDULES)}"
        )
    stages = len(spec) + 1
    size = dist.get_world_size(group)
    if stages != size:
        raise MLOpsUsageError(
            f"pipeline: {len(spec)} split point(s) make {stages} stages but the group has "
            f"{size} ranks; one stage per rank (-n {stages})"
        )
    if microbatches < stages or example.shape[0] % microbatches:
        raise MLOpsUsageError(
            f"pipeline: microbatches={microbatches} must be at least the {stages} stages and "
            f"divide the example's batch of {example.shape[0]}"
        )
    device = rank_device()
    first_microbatch = torch.chunk(example.to(device), microbatches)[0]
    traced = trace(model.to(device), mb_args=(first_microbatch,), split_spec=spec)
    index = dist.get_rank(group)
    stage = traced.build_stage(index, device, group)
    runner = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}[schedule]
    return Pipeline(
        module=stage.submod,
        stage=stage,
        schedule=runner(stage, n_microbatches=microbatches, loss_fn=loss_fn),
        stage_index=index,
        num_stages=stages,
        microbatches=microbatches,
        group=group,
    )
