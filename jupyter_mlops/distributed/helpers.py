"""Helpers a ``%%distributed`` cell calls; nothing here is ever applied on its own.

``ddp`` and ``fsdp`` wrap a model for the process group the worker already built; ``sampler``
gives each rank its shard of a dataset. Use DDP unless the parameters, gradients and optimizer
state do not fit on one device: FSDP communicates more and was 6x slower at world size 1.
"""

from __future__ import annotations

from typing import Any

from ..errors import MLOpsUsageError


def require_group(helper: str) -> Any:
    import torch.distributed as dist

    if not dist.is_initialized():
        raise MLOpsUsageError(
            f"{helper}() runs inside a %%distributed cell, where the process group exists"
        )
    return dist


def ddp(model: Any, **kwargs: Any) -> Any:
    """``DistributedDataParallel(model)``, on this rank's GPU when the backend is NCCL."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    dist = require_group("ddp")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
        model = model.to(device)
        kwargs.setdefault("device_ids", [device.index])
    return DistributedDataParallel(model, **kwargs)


def fsdp(model: Any, *, block_cls: type | tuple[type, ...] | None = None, **kwargs: Any) -> Any:
    """FSDP2 ``fully_shard`` on every ``block_cls`` submodule, then on the root (in place)."""
    import torch
    from torch.distributed.fsdp import fully_shard

    shard: Any = fully_shard  # its overloads cannot see through isinstance on a tuple of classes
    dist = require_group("fsdp")
    if dist.get_backend() == "nccl":
        model = model.to(torch.device("cuda", torch.cuda.current_device()))
    if block_cls is not None:
        for module in list(model.modules()):
            if isinstance(module, block_cls) and module is not model:
                shard(module, **kwargs)
    shard(model, **kwargs)
    return model


def sampler(dataset: Any, *, shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> Any:
    """A ``DistributedSampler`` giving this rank its share of ``dataset``."""
    from torch.utils.data.distributed import DistributedSampler

    dist = require_group("sampler")
    return DistributedSampler(
        dataset,
        num_replicas=dist.get_world_size(),
        rank=dist.get_rank(),
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
    )
