"""Facts about the machine and Python environment, gathered without initialising CUDA here.

GPUs are counted by ``nvidia-smi`` and torch is probed in a child process: importing torch or
touching CUDA in the kernel would make every later fork-based launcher fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata

TORCH_PROBE = (
    "import json, torch; "
    "print(json.dumps({'version': torch.__version__, 'cuda': torch.version.cuda, "
    "'devices': torch.cuda.device_count()}))"
)
#: torch is an optional extra: installing it must never replace a user's own (CUDA) build.
TORCH_INSTALL = (
    'pip install "jupyter-mlops[distributed]" (or install your own torch build first, '
    "e.g. from https://pytorch.org/get-started/)"
)


def torch_installed() -> bool:
    """Is torch importable here (looked up without importing it)?"""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mib: int


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def gpu_inventory(timeout: float = 10.0) -> list[Gpu]:
    """Visible NVIDIA GPUs from ``nvidia-smi`` (empty when there is none or no driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        index, name, memory = (part.strip() for part in line.split(","))
        gpus.append(Gpu(int(index), name, int(float(memory))))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        wanted = {v.strip() for v in visible.split(",") if v.strip()}
        gpus = [g for g in gpus if str(g.index) in wanted]
    return gpus


def probe_torch(timeout: float = 120.0) -> dict[str, object]:
    """torch's version and CUDA device count, asked of a fresh interpreter."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", TORCH_PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"importing torch took over {timeout:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        return {"error": last}
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def cuda_initialised_here() -> bool:
    """Has this process already initialised CUDA (without importing torch to find out)?"""
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


def torchrun_path() -> str | None:
    bin_dir = os.path.dirname(sys.executable)
    return shutil.which("torchrun", path=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))
