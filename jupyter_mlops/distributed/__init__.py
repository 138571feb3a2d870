"""Distributed training from a cell on torchrun (``%%distributed``).

A cell becomes a job folder run by a torchrun agent in a subprocess, never a fork of the kernel,
so CUDA work in the notebook cannot break a launch. ``run`` is the face the magic and scripts
use; ``pool`` keeps ranks warm between cells. For the cell itself: ``ddp``, ``fsdp``, ``mesh``,
``tensor_parallel``, ``pipeline``, ``deepspeed`` and ``sampler`` (thin calls into PyTorch's
own APIs), ``save``/``load`` (sharded DCP checkpoints; resumable under ``--max-restarts``),
``mark_step`` (per-rank step time) and ``log_every_rank``; ``consolidate`` turns a checkpoint
back into a plain model. Nothing here imports torch until a helper is called.
"""

from __future__ import annotations

from . import kubernetes, pool, ray_executor  # noqa: F401 (kubernetes, ray_executor register executors)
from .checkpoint import consolidate, load, save
from .errors import DistributedCancelled, DistributedCellError, DistributedTimeout
from .helpers import ddp, deepspeed, fsdp, mesh, sampler, tensor_parallel
from .jobs import cancel, status
from .launch import run
from .pipeline import Pipeline, pipeline
from .plan import JobRequest
from .rank_logging import log_every_rank
from .results import DistributedResult, DistributedStatus
from .stats import mark_step
from .submitted import wait

__all__ = [
    "DistributedCancelled",
    "DistributedCellError",
    "DistributedResult",
    "DistributedStatus",
    "DistributedTimeout",
    "JobRequest",
    "Pipeline",
    "cancel",
    "consolidate",
    "ddp",
    "deepspeed",
    "fsdp",
    "load",
    "log_every_rank",
    "mark_step",
    "mesh",
    "pipeline",
    "pool",
    "run",
    "sampler",
    "save",
    "status",
    "tensor_parallel",
    "wait",
]
