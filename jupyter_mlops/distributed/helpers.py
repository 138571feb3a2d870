"""Helpers a ``%%distributed`` cell calls; nothing here is ever applied on its own.

Each one is a thin call into PyTorch's own API on the process group the worker already built,
and returns PyTorch's own objects:

- ``ddp(model)``: ``DistributedDataParallel``. Use it unless the model does not fit on one device.
- ``fsdp(model, block_cls=...)``: FSDP2 ``fully_shard`` with a ``MixedPrecisionPolicy`` (bf16
  on GPUs, fp32 on CPU). It communicates more than DDP and was 6x slower at world size 1.
- ``mesh(dp=, tp=)``: a ``DeviceMesh`` (1-D, or 2-D named ``dp``/``tp``) for the two below.
- ``tensor_parallel(model, plan)``: ``parallelize_module`` on the mesh (or its ``tp`` dimension).
- ``pipeline(...)`` (in :mod:`.pipeline`): ``torch.distributed.pipelining`` stages and schedule.
- ``deepspeed(model, config)``: ``deepspeed.initialize`` (ZeRO) when DeepSpeed is installed.
- ``sampler(dataset)``: a ``DistributedSampler`` giving each rank its shard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import MLOpsUsageError

MIXED_PRECISION = ("bf16", "fp16", "fp32")
TP_STYLES = ("colwise", "rowwise")


def require_group(helper: str) -> Any:
    import torch.distributed as dist

    if not dist.is_initialized():
        raise MLOpsUsageError(
            f"{helper}() runs inside a %%distributed cell, where the process group exists"
        )
    return dist


def device_type() -> str:
    """``cuda`` under NCCL, else ``cpu`` (the worker chose the backend from the GPUs it has)."""
    return "cuda" if require_group("mesh").get_backend() == "nccl" else "cpu"


def rank_device() -> Any:
    """This rank's ``torch.device``: its GPU under NCCL, else the CPU."""
    import torch

    if device_type() == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def on_rank_device(model: Any) -> Any:
    return model.to(rank_device()) if device_type() == "cuda" else model


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


def mixed_precision(precision: Any) -> Any:
    """A ``MixedPrecisionPolicy`` from "bf16"/"fp16"/"fp32", None (bf16 on GPU), or a policy."""
    import torch
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if isinstance(precision, MixedPrecisionPolicy):
        return precision
    if precision is None:
        precision = "bf16" if device_type() == "cuda" else "fp32"
    if precision not in MIXED_PRECISION:
        raise MLOpsUsageError(
            f"fsdp(precision={precision!r}): choose one of {', '.join(MIXED_PRECISION)}, "
            "or pass a torch.distributed.fsdp.MixedPrecisionPolicy"
        )
    if precision == "fp32":
        return MixedPrecisionPolicy()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)


def fsdp(
    model: Any,
    *,
    block_cls: type | tuple[type, ...] | None = None,
    precision: Any = None,
    mesh: Any = None,
    **kwargs: Any,
) -> Any:
    """FSDP2 ``fully_shard`` on every ``block_cls`` submodule, then on the root (in place).

    ``precision``: "bf16" (the default on GPUs: bf16 compute, fp32 gradient reduction),
    "fp16", "fp32" (the default on CPU) or a ``MixedPrecisionPolicy``. ``mesh``: the data-parallel
    mesh (``mesh(dp=2, tp=2)["dp"]`` to compose with tensor parallelism); default every rank.
    Other keywords go to ``fully_shard`` unchanged.
    """
    from torch.distributed.fsdp import fully_shard

    shard: Any = fully_shard  # its overloads cannot see through isinstance on a tuple of classes
    require_group("fsdp")
    model = on_rank_device(model)
    kwargs.setdefault("mp_policy", mixed_precision(precision))
    if mesh is not None:
        kwargs["mesh"] = mesh
    if block_cls is not None:
        for module in list(model.modules()):
            if isinstance(module, block_cls) and module is not model:
                shard(module, **kwargs)
    shard(model, **kwargs)
    return model


def mesh(*, dp: int | None = None, tp: int | None = None) -> Any:
    """A ``DeviceMesh`` over every rank: 1-D without arguments, 2-D ``("dp", "tp")`` with both.

    ``dp * tp`` must equal the world size; give one and the other is what is left. Index the
    result by name (``m["tp"]``) for :func:`tensor_parallel` and :func:`fsdp`.
    """
    from torch.distributed.device_mesh import init_device_mesh

    world = require_group("mesh").get_world_size()
    if dp is None and tp is None:
        return whole_mesh()
    asked = ", ".join(f"{k}={v}" for k, v in (("dp", dp), ("tp", tp)) if v is not None)
    if dp is None:
        dp = world // tp if tp and world % tp == 0 else 0
    if tp is None:
        tp = world // dp if dp and world % dp == 0 else 0
    if dp < 1 or tp < 1 or dp * tp != world:
        raise MLOpsUsageError(
            f"mesh({asked}): dp x tp must equal the world size {world}; change -n or the mesh shape"
        )
    return init_device_mesh(device_type(), (dp, tp), mesh_dim_names=("dp", "tp"))


def whole_mesh() -> Any:
    """A 1-D ``DeviceMesh`` over every rank."""
    from torch.distributed.device_mesh import init_device_mesh

    world = require_group("mesh").get_world_size()
    return init_device_mesh(device_type(), (world,))


def parallel_style(fqn: str, style: Any) -> Any:
    from torch.distributed.tensor.parallel import ColwiseParallel, ParallelStyle, RowwiseParallel

    if isinstance(style, ParallelStyle):
        return style
    if style == "colwise":
        return ColwiseParallel()
    if style == "rowwise":
        return RowwiseParallel()
    raise MLOpsUsageError(
        f"tensor_parallel plan {fqn!r}: {style!r} is not a ParallelStyle; use 'colwise', "
        "'rowwise' or a torch.distributed.tensor.parallel style"
    )


def tensor_parallel(model: Any, plan: Mapping[str, Any], *, mesh: Any = None) -> Any:
    """``parallelize_module(model, mesh, plan)``: shard the named submodules (in place).

    ``plan`` maps submodule names (``"layers.*.attn.q"`` style globs work) to a
    ``ParallelStyle`` or the shorthands ``"colwise"``/``"rowwise"``. ``mesh``: a 1-D mesh or a
    2-D one from :func:`mesh` (its ``tp`` dimension is used); default every rank.
    Apply it before :func:`fsdp` when composing the two.
    """
    from torch.distributed.tensor.parallel import parallelize_module

    require_group("tensor_parallel")
    if not isinstance(plan, Mapping) or not plan:
        raise MLOpsUsageError(
            "tensor_parallel(model, plan): plan maps submodule names to 'colwise'/'rowwise' "
            "or ParallelStyle objects, e.g. {'mlp.up': 'colwise', 'mlp.down': 'rowwise'}"
        )
    chosen = whole_mesh() if mesh is None else mesh
    if chosen.ndim == 2:
        if "tp" not in (chosen.mesh_dim_names or ()):
            raise MLOpsUsageError("tensor_parallel(mesh=...): a 2-D mesh needs a 'tp' dimension")
        chosen = chosen["tp"]
    styles = {fqn: parallel_style(fqn, style) for fqn, style in plan.items()}
    return parallelize_module(on_rank_device(model), chosen, styles)


def deepspeed(model: Any, config: Mapping[str, Any], **kwargs: Any) -> Any:
    """``deepspeed.initialize(model=model, config=config)`` (ZeRO from the config dict).

    Returns DeepSpeed's ``(engine, optimizer, dataloader, lr_scheduler)`` unchanged.
    """
    require_group("deepspeed")
    try:
        import deepspeed as ds
    except ImportError:
        raise MLOpsUsageError(
            "deepspeed() needs DeepSpeed, which is not installed on the ranks: "
            'pip install "jupyter-mlops[deepspeed]" (or pip install deepspeed)'
        ) from None
    if not isinstance(config, Mapping):
        raise MLOpsUsageError("deepspeed(model, config): config is a DeepSpeed config dict")
    return ds.initialize(model=model, config=dict(config), **kwargs)


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
