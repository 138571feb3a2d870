"""The job folder: everything one ``%%distributed`` cell needs, written before any process starts.

``<home>/jobs/<id>/`` holds the cell source, the pushed values (cloudpickled one by one, CUDA
tensors moved to CPU so that no rank unpickles onto ``cuda:0``), the job description, and later
the per-rank pids, logs, error reports and rank 0's result. Every rank on every node reads the
same folder, so on a cluster it must sit on a shared filesystem.
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MLOpsUsageError

LARGE_PUSH_BYTES = 64 * 2**20
CELL_FILENAME = "<cell>"
JOB_FILE = "job.json"
STATE_FILE = "state.json"
CELL_FILE = "cell.py"
INPUTS_FILE = "inputs.pkl"
RESULT_FILE = "result.pkl"
CONTROL_FILE = "control.json"  # the warm pool's loopback address and token
EXITS_FILE = "exits.json"  # in errors/: how the agent saw each failed rank end
RESTARTS_FILE = "restarts.jsonl"  # in errors/: each attempt torchrun restarted, and why


@dataclass(frozen=True)
class JobSpec:
    """What to run and how; written to ``job.json`` and read back by every worker."""

    nproc_per_node: int
    backend: str  # "nccl", "gloo", or "auto" (decided on each node by the worker)
    nnodes: int = 1
    rdzv: str | None = None
    executor: str = "local"
    gpus: tuple[int, ...] | None = None
    pull: tuple[str, ...] = ("result",)
    pull_explicit: bool = False
    timeout: float | None = None
    max_restarts: int = 0
    mlflow_run_id: str | None = None
    mlflow_tracking_uri: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the executor's own (Executor.options)

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


@dataclass
class Job:
    id: str
    dir: Path
    spec: JobSpec
    push: tuple[str, ...] = field(default=())

    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def errors_dir(self) -> Path:
        return self.dir / "errors"

    @property
    def pids_dir(self) -> Path:
        return self.dir / "pids"

    def state(self) -> dict[str, Any]:
        path = self.dir / STATE_FILE
        return json.loads(path.read_text()) if path.exists() else {"state": "created"}

    def set_state(self, state: str, **extra: Any) -> None:
        merged = {**self.state(), **extra, "state": state}
        write_atomic(self.dir / STATE_FILE, json.dumps(merged, indent=1).encode())

    def rank_states(self) -> dict[int, str]:
        """``{rank: "running" | "done" | "failed"}`` for every rank that has started, any host."""
        states = {}
        for path in self.pids_dir.glob("rank-*.json"):
            entry = json.loads(path.read_text())
            states[int(entry["rank"])] = entry.get("state", "running")
        return dict(sorted(states.items()))

    def rank_exits(self) -> dict[int, int]:
        """``{rank: exit code or -signal}`` of the ranks that failed, written by the agent."""
        path = self.errors_dir / EXITS_FILE
        return {int(r): c for r, c in json.loads(path.read_text()).items()} if path.exists() else {}

    def restarts(self) -> list[dict[str, Any]]:
        """Each failed attempt torchrun restarted: ``attempt``, ``exits`` ({rank: code})."""
        path = self.errors_dir / RESTARTS_FILE
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def worker_pids(self) -> dict[int, int]:
        """``{rank: pid}`` of the workers that started on this host."""
        host = os.uname().nodename
        pids = {}
        for path in sorted(self.pids_dir.glob("rank-*.json")):
            entry = json.loads(path.read_text())
            if entry.get("host") == host:
                pids[int(entry["rank"])] = int(entry["pid"])
        return pids


def new_job_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def dumps_cpu(value: Any) -> bytes:
    """cloudpickle ``value`` with every CUDA tensor in it moved to CPU (torch is never imported)."""
    import io

    import cloudpickle

    class CpuPickler(cloudpickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            torch = sys.modules.get("torch")
            if torch is not None and isinstance(obj, torch.Tensor) and obj.device.type == "cuda":
                moved = obj.detach().to("cpu")
                if isinstance(obj, torch.nn.Parameter):
                    moved = torch.nn.Parameter(moved, requires_grad=obj.requires_grad)
                return moved.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
            return super().reducer_override(obj)

    buffer = io.BytesIO()
    CpuPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    import cloudpickle

    return cloudpickle.loads(data)


def encode_push(push: Mapping[str, Any]) -> dict[str, bytes]:
    """Each pushed value cloudpickled; unpicklable ones are usage errors, large ones a warning."""
    payload: dict[str, bytes] = {}
    for name, value in push.items():
        try:
            payload[name] = dumps_cpu(value)
        except Exception as exc:
            raise MLOpsUsageError(
                f"--push {name}: cannot be pickled ({type(exc).__name__}: {exc}); "
                "create it inside the cell instead"
            ) from None
    total = sum(len(b) for b in payload.values())
    if total > LARGE_PUSH_BYTES:
        biggest = max(payload, key=lambda n: len(payload[n]))
        warnings.warn(
            f"%%distributed pushes {total / 2**20:.0f} MB ({biggest}: "
            f"{len(payload[biggest]) / 2**20:.0f} MB) to every rank; for large data save it to a "
            "file and push its path instead",
            stacklevel=5,  # the caller of distributed.run, past run_job/run_cell and create_job
        )
    return payload


def create_job(home: Path, source: str, spec: JobSpec, push: Mapping[str, Any]) -> Job:
    """Write the job folder (see :func:`encode_push` for the pushed values)."""
    payload = encode_push(push)
    job_id = new_job_id()
    job_dir = home / "jobs" / job_id
    for sub in ("logs", "errors", "pids"):
        (job_dir / sub).mkdir(parents=True, exist_ok=True)
    job = Job(job_id, job_dir, spec, tuple(payload))
    (job_dir / CELL_FILE).write_text(source)
    write_atomic(job_dir / INPUTS_FILE, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    description = {"id": job_id, "push": list(payload), **asdict(spec)}
    write_atomic(job_dir / JOB_FILE, json.dumps(description, indent=1).encode())
    return job


def load_job(job_dir: Path) -> Job:
    description = json.loads((job_dir / JOB_FILE).read_text())
    job_id = description.pop("id")
    push = tuple(description.pop("push"))
    for key in ("gpus", "pull"):
        if description[key] is not None:
            description[key] = tuple(description[key])
    return Job(job_id, job_dir, JobSpec(**description), push)


def load_inputs(job: Job) -> dict[str, Any]:
    payload: dict[str, bytes] = pickle.loads((job.dir / INPUTS_FILE).read_bytes())
    return {name: loads(data) for name, data in payload.items()}


def list_jobs(home: Path) -> list[Job]:
    root = home / "jobs"
    if not root.is_dir():
        return []
    return [load_job(d) for d in sorted(root.iterdir()) if (d / JOB_FILE).is_file()]
