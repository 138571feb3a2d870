"""Distributed training from a cell on torchrun (``%%distributed``).

A cell becomes a job folder run by a torchrun agent in a subprocess, never a fork of the kernel,
so CUDA work in the notebook cannot break a launch. ``run`` is the face the magic and scripts
use; ``ddp``, ``fsdp`` and ``sampler`` are for the cell itself. Nothing here imports torch until
a helper is called.
"""

from __future__ import annotations

from .errors import DistributedCellError, DistributedTimeout
from .helpers import ddp, fsdp, sampler
from .launch import cancel, run, status
from .results import DistributedResult, DistributedStatus

__all__ = [
    "DistributedCellError",
    "DistributedResult",
    "DistributedStatus",
    "DistributedTimeout",
    "cancel",
    "ddp",
    "fsdp",
    "run",
    "sampler",
    "status",
]
