"""Distributed training from a cell on torchrun (``%%distributed``).

A cell becomes a job folder run by a torchrun agent in a subprocess, never a fork of the kernel,
so CUDA work in the notebook cannot break a launch. ``run`` is the face the magic and scripts
use; ``pool`` keeps ranks warm between cells; ``ddp``, ``fsdp``, ``sampler`` and
``log_every_rank`` are for the cell itself. Nothing here imports torch until
a helper is called.
"""

from __future__ import annotations

from . import pool
from .errors import DistributedCancelled, DistributedCellError, DistributedTimeout
from .helpers import ddp, fsdp, sampler
from .jobs import cancel, status
from .launch import run
from .plan import JobRequest
from .rank_logging import log_every_rank
from .results import DistributedResult, DistributedStatus

__all__ = [
    "DistributedCancelled",
    "DistributedCellError",
    "DistributedResult",
    "DistributedStatus",
    "DistributedTimeout",
    "JobRequest",
    "cancel",
    "ddp",
    "fsdp",
    "log_every_rank",
    "pool",
    "run",
    "sampler",
    "status",
]
