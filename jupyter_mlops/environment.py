"""Facts about the machine and Python environment, gathered without initialising CUDA here.

GPUs are counted by NVML or ``nvidia-smi`` and torch is probed in a child process: importing
torch or touching CUDA in the kernel would make every later fork-based launcher fail.
"""

from __future__ import annotations

import contextlib
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
    index: int  # the physical index, as nvidia-smi numbers it
    name: str
    memory_mib: int | None  # None where the driver reports [N/A]
    uuid: str = ""


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def gpu_inventory(timeout: float = 10.0) -> list[Gpu]:
    """The NVIDIA GPUs this process may use (CUDA_VISIBLE_DEVICES applied); empty without any.

    Asked of NVML (``nvidia-ml-py``) when it is installed, else of ``nvidia-smi``; neither
    initialises CUDA. Fields the driver does not report (``[N/A]``) are left empty, never fatal.
    """
    gpus = _nvml_gpus()
    if gpus is None:
        gpus = _nvidia_smi_gpus(timeout)
    return visible_subset(gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))


def _nvml_gpus() -> list[Gpu] | None:
    """GPUs from NVML; None when pynvml is missing or the driver cannot be reached."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError: no driver, no library, no permission
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            try:
                memory: int | None = pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20
            except Exception:  # not supported on this device
                memory = None
            gpus.append(Gpu(index, _text(name), memory, _text(uuid)))
        return gpus
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvidia_smi_gpus(timeout: float) -> list[Gpu]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(out)


def parse_nvidia_smi(out: str) -> list[Gpu]:
    """Rows of ``index, uuid, name, memory.total``; a row without a usable index is skipped."""
    gpus = []
    for line in out.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        index, uuid, memory = parts[0], parts[1], parts[-1]
        name = ", ".join(parts[2:-1])  # a name may itself hold a comma
        try:
            memory_mib: int | None = int(float(memory))
        except ValueError:  # [N/A], [Not Supported], [Unknown Error]
            memory_mib = None
        gpus.append(Gpu(int(index), name, memory_mib, "" if uuid.startswith("[") else uuid))
    return gpus


def visible_subset(gpus: list[Gpu], visible: str | None) -> list[Gpu]:
    """The GPUs named by CUDA_VISIBLE_DEVICES, in its order, as CUDA reads it.

    Entries are indices or UUIDs (``GPU-8f3a...``, a unique prefix is enough); CUDA stops at
    the first entry that names no device, so this does too. Unset: all of them.
    """
    if visible is None:
        return gpus
    chosen: list[Gpu] = []
    for entry in (e.strip() for e in visible.split(",")):
        if entry.isdigit():
            found = [g for g in gpus if g.index == int(entry)]
        elif entry.upper().startswith("GPU-"):
            found = [g for g in gpus if g.uuid.upper().startswith(entry.upper())]
        else:
            found = []
        if len(found) != 1 or found[0] in chosen:
            break
        chosen.append(found[0])
    return chosen


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
