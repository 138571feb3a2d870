"""Sharded checkpoints of a ``%%distributed`` cell with ``torch.distributed.checkpoint`` (DCP).

``save(state, step)`` writes every rank's shards to ``<job>/checkpoints/step-NNNNNNNNN/``
(and, inside ``%%track``, rank 0 logs the folder as run artifacts); ``load(state)`` fills
``state`` in place from the newest complete checkpoint and returns its step, or None when
there is none, so a cell restarted by ``--max-restarts`` resumes where it was. ``state`` maps
names to modules, optimizers and plain values; modules and optimizers go through DCP's
``get_model_state_dict``/``get_optimizer_state_dict`` (FSDP2 and tensor-parallel shards
included). A checkpoint is complete once rank 0 wrote ``mlops-checkpoint.json`` after DCP's own
metadata: one cut short by a dead rank is never loaded.

:func:`consolidate` rebuilds a plain model from a checkpoint and a factory, without a process
group: ``%register CHECKPOINT --factory make_model`` uses it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from ..errors import MLOpsUsageError
from .helpers import require_group
from .job import write_atomic

JOB_DIR_ENV = "MLOPS_JOB_DIR"
CHECKPOINTS_DIR = "checkpoints"
STEP_PREFIX = "step-"
META_FILE = "mlops-checkpoint.json"


def current_job_dir(helper: str) -> Path:
    value = os.environ.get(JOB_DIR_ENV)
    if not value:
        raise MLOpsUsageError(f"{helper}() runs inside a %%distributed cell")
    return Path(value)


def step_folder(root: Path, step: int) -> Path:
    return root / f"{STEP_PREFIX}{step:09d}"


def complete_steps(root: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every complete checkpoint under ``root``, oldest first."""
    found = []
    for folder in root.glob(f"{STEP_PREFIX}*"):
        meta = folder / META_FILE
        if meta.is_file():
            found.append((int(json.loads(meta.read_text())["step"]), folder))
    return sorted(found)


def resolve(checkpoint: Any) -> Path:
    """The step folder named by a step folder, a checkpoints folder, a job folder or result."""
    job_dir = getattr(checkpoint, "job_dir", None)
    path = Path(job_dir if job_dir is not None else checkpoint).expanduser()
    if (path / META_FILE).is_file():
        return path
    for root in (path, path / CHECKPOINTS_DIR):
        steps = complete_steps(root)
        if steps:
            return steps[-1][1]
    raise MLOpsUsageError(
        f"{path}: no complete checkpoint there; pass a job folder, its checkpoints/ folder or "
        "one step-N folder written by mlops.distributed.save()"
    )


def split_state(state: MutableMapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(modules, optimizers)`` of ``state``; every optimizer is paired with its module."""
    import torch

    if not isinstance(state, MutableMapping) or not state:
        raise MLOpsUsageError(
            "save/load(state): state is a dict such as {'model': model, 'optim': optimizer, "
            "'epoch': 3}"
        )
    modules = {k: v for k, v in state.items() if isinstance(v, torch.nn.Module)}
    optimizers = {k: v for k, v in state.items() if isinstance(v, torch.optim.Optimizer)}
    return modules, optimizers


def owner(name: str, optimizer: Any, modules: dict[str, Any]) -> Any:
    params = {id(p) for group in optimizer.param_groups for p in group["params"]}
    for module in modules.values():
        if params & {id(p) for p in module.parameters()}:
            return module
    raise MLOpsUsageError(
        f"save/load(state): optimizer {name!r} has none of the parameters of the modules in "
        "state; put its model in the same dict"
    )


def state_dict(state: MutableMapping[str, Any]) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    modules, optimizers = split_state(state)
    flat: dict[str, Any] = {}
    for key, value in state.items():
        if key in modules:
            flat[key] = get_model_state_dict(value)
        elif key in optimizers:
            flat[key] = get_optimizer_state_dict(owner(key, value, modules), value)
        else:
            flat[key] = value
    return flat


def save(
    state: MutableMapping[str, Any], step: int, *, keep: int | None = None, log: bool = True
) -> Path:
    """Write ``state`` as a sharded DCP checkpoint for ``step``; the step folder.

    Every rank calls it. ``keep``: how many checkpoints to keep (older ones are deleted once
    this one is complete; default all). Inside ``%%track`` rank 0 logs the folder to the run
    as ``distributed/<job>/checkpoints/step-N`` unless ``log=False``.
    """
    import torch.distributed.checkpoint as dcp

    dist = require_group("save")
    if not isinstance(step, int) or step < 0:
        raise MLOpsUsageError(f"save(state, step): step is an int >= 0, got {step!r}")
    job_dir = current_job_dir("save")
    root = job_dir / CHECKPOINTS_DIR
    folder = step_folder(root, step)
    if dist.get_rank() == 0:
        shutil.rmtree(folder, ignore_errors=True)  # a step a killed attempt began writing
        folder.mkdir(parents=True)
    dist.barrier()
    flat = state_dict(state)
    dcp.save(flat, checkpoint_id=folder)
    if dist.get_rank() == 0:
        modules, _ = split_state(state)
        meta = {
            "step": step,
            "world_size": dist.get_world_size(),
            "modules": sorted(modules),
            "job": job_dir.name,
            "time": time.time(),
        }
        write_atomic(folder / META_FILE, json.dumps(meta).encode())
        if keep is not None:
            for _, old in complete_steps(root)[:-keep] if keep > 0 else []:
                shutil.rmtree(old, ignore_errors=True)
        if log:
            from .rank_logging import log_folder

            log_folder(folder, f"distributed/{job_dir.name}/{CHECKPOINTS_DIR}/{folder.name}")
    dist.barrier()
    return folder


def load(state: MutableMapping[str, Any], checkpoint: Any = None) -> int | None:
    """Fill ``state`` in place from the newest complete checkpoint; its step, or None.

    ``checkpoint`` defaults to this job's own checkpoints (a cell restarted by
    ``--max-restarts`` finds what the attempt before it saved); give a folder or a
    ``DistributedResult`` to start from another job's. Plain values in ``state`` are replaced.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    require_group("load")
    if checkpoint is None:
        steps = complete_steps(current_job_dir("load") / CHECKPOINTS_DIR)
        if not steps:
            return None
        step, folder = steps[-1]
    else:
        folder = resolve(checkpoint)
        step = int(json.loads((folder / META_FILE).read_text())["step"])
    modules, optimizers = split_state(state)
    flat = state_dict(state)
    dcp.load(flat, checkpoint_id=folder)
    for key, value in flat.items():
        if key in modules:
            set_model_state_dict(modules[key], value)
        elif key in optimizers:
            set_optimizer_state_dict(owner(key, optimizers[key], modules), optimizers[key], value)
        else:
            state[key] = value
    return step


def consolidate(checkpoint: Any, factory: Callable[[], Any], *, key: str | None = None) -> Any:
    """A plain model from ``factory()`` with the weights of a sharded checkpoint (no group).

    ``checkpoint``: a step folder, a job folder or its ``checkpoints/`` (newest step), or a
    ``DistributedResult``. ``key``: which module of the saved state (default: the only one).
    """
    import torch
    import torch.distributed.checkpoint as dcp

    folder = resolve(checkpoint)
    saved = json.loads((folder / META_FILE).read_text())["modules"]
    if key is None:
        if len(saved) != 1:
            raise MLOpsUsageError(
                f"{folder} holds modules {saved}; name the one to register with key=..."
            )
        key = saved[0]
    if key not in saved:
        raise MLOpsUsageError(f"{folder} holds no module {key!r} (modules: {', '.join(saved)})")
    if not callable(factory):
        raise MLOpsUsageError("--factory names a function that builds the (untrained) model")
    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise MLOpsUsageError(
            f"the factory returned a {type(model).__name__}; it must build a torch nn.Module"
        )
    from torch.distributed.checkpoint.api import CheckpointException

    weights = model.state_dict()
    try:
        with warnings.catch_warnings():  # "assuming ... a single process": that is the intent
            warnings.filterwarnings("ignore", "torch.distributed is disabled")
            dcp.load({key: weights}, checkpoint_id=folder, no_dist=True)
    except (Exception, CheckpointException) as exc:  # DCP's is a BaseException
        lines = str(exc).strip().splitlines()
        why = lines[-1].strip() if lines else type(exc).__name__  # the cause is the last line
        raise MLOpsUsageError(
            f"the factory's model does not match checkpoint {folder.name} ({why[:200]}); "
            "build the same architecture the job trained"
        ) from None
    model.load_state_dict(weights)
    return model.eval()
