"""``--executor ray``: the cell's ranks as a Ray Train ``TorchTrainer`` on an existing Ray cluster.

Why ``TorchTrainer`` and not torchrun inside a Ray job: a Ray job's entrypoint runs on one node,
so torchrun there would only use that node, and placing ranks on other nodes would mean a
second rendezvous of our own. ``TorchTrainer`` asks Ray to place ``world_size`` workers (with
``--gpus-per-rank`` GPUs each), builds the process group itself (gloo on CPU, NCCL on GPUs)
and cleans the workers up when the driver goes away.

The cell waits on a driver process (``python -m jupyter_mlops.distributed.ray_executor``) run
exactly as the local torchrun agent is: output piped into the cell, stopped with its process
group on Ctrl-C, ``--timeout`` or ``%distributed cancel``. Ray ends the job's actors when its
driver exits. Each Ray worker runs the same worker code as torchrun's ranks
(:func:`~.worker.main`: pushed values, ``rank``/``world_size``/``device``, error reports,
rank 0's result) in the shared job folder, and prefixes its lines ``[rankN]:`` as torchrun does;
the driver removes Ray's own ``(RayTrainWorker pid=...)`` prefix so the cell shows
``[rank N]`` lines like any other executor.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

from ..errors import MLOpsUsageError
from .executors import Executor, job_env, register
from .job import Job

DRIVER_MODULE = "jupyter_mlops.distributed.ray_executor"
RAY_INSTALL = 'pip install "jupyter-mlops[ray]" (Ray Train: pip install "ray[train]")'
ADDRESS = re.compile(r"^(auto|local|(ray://)?[\w.\-]+:\d{1,5})$")
RANK_OUTPUT = "ray-rank-"  # logs/ray-rank-N.out: what rank N printed, prefixed [rankN]:
RAY_PREFIX = re.compile(r"^(?:\x1b\[[\d;]*m)?\([^)]*\)(?:\x1b\[[\d;]*m)?\s?")


@register
class RayTrainer(Executor):
    """A Ray Train ``TorchTrainer`` driven from a subprocess the cell waits on."""

    name = "ray"
    remote = True
    options: ClassVar[tuple[str, ...]] = ("address", "gpus_per_rank")

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        address = options.get("address", "auto")
        if not ADDRESS.match(str(address)):
            raise MLOpsUsageError(
                f"--address takes auto, HOST:PORT or ray://HOST:10001, got {address!r}"
            )
        gpus = options.get("gpus_per_rank")
        if gpus is not None and (not isinstance(gpus, int) or gpus < 0):
            raise MLOpsUsageError(f"--gpus-per-rank takes a whole number >= 0, got {gpus!r}")
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise MLOpsUsageError(
                f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}"
            )
        return {**options, "address": address}

    def launch(self, job: Job) -> subprocess.Popen[bytes]:
        env = {**os.environ, **job_env(job), "RAY_DEDUP_LOGS": "0"}
        env.setdefault("OMP_NUM_THREADS", "1")
        return subprocess.Popen(
            [sys.executable, "-m", DRIVER_MODULE, str(os.getpid()), str(job.dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


class RankPrefix(io.TextIOBase):
    """A text stream that prefixes each line ``[rankN]:`` (torchrun's tee prefix)."""

    def __init__(self, stream: Any, rank: int) -> None:
        self.stream, self.prefix, self.at_start = stream, f"[rank{rank}]:", True

    def write(self, text: str) -> int:
        for piece in text.splitlines(keepends=True):
            self.stream.write(self.prefix + piece if self.at_start else piece)
            self.at_start = piece.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class WithoutRayPrefix(io.TextIOBase):
    """The driver's stdout without the ``(RayTrainWorker pid=…)`` Ray puts before worker lines."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.pending = stream, ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.stream.write(RAY_PREFIX.sub("", line) + "\n")
        self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def ray_entry(config: dict[str, Any]) -> None:
    """One rank, inside a Ray Train worker: the torchrun worker's code with Ray's group."""
    import ray.train

    from .worker import main

    context = ray.train.get_context()
    rank = context.get_world_rank()
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(context.get_local_rank()),
        WORLD_SIZE=str(context.get_world_size()),
        LOCAL_WORLD_SIZE=str(context.get_local_world_size()),
    )
    saved = sys.stdout, sys.stderr
    job_dir = Path(config["job_dir"])
    with (job_dir / "logs" / f"{RANK_OUTPUT}{rank}.out").open("a", buffering=1) as out:
        sys.stdout = sys.stderr = RankPrefix(out, rank)
        try:
            code = main(job_dir)
        finally:
            sys.stdout, sys.stderr = saved
    if code != 0:
        raise RuntimeError(f"rank {rank} failed; its report is in errors/rank-{rank}.json")


def drive(job_dir: Path) -> int:
    """Run the job's ranks as a ``TorchTrainer`` and wait; 0 when every rank finished."""
    import logging

    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from .job import load_job

    job = load_job(job_dir)
    options = job.spec.options
    gpus = int(options.get("gpus_per_rank") or 0)
    address = options.get("address", "auto")
    ray.init(
        address=None if address == "local" else address,
        logging_level=logging.ERROR,
        log_to_driver=False,  # the ranks' lines come from the job folder (once each)
        # Ray Train's print patch would send every print to its logger and then stdout: twice.
        runtime_env={"env_vars": {**job_env(job), "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}},
    )
    trainer = TorchTrainer(
        ray_entry,
        train_loop_config={"job_dir": str(job.dir)},
        scaling_config=ScalingConfig(
            num_workers=job.spec.world_size,
            use_gpu=gpus > 0,
            resources_per_worker={"CPU": 1, "GPU": gpus} if gpus else {"CPU": 1},
        ),
        run_config=RunConfig(name=f"mlops-{job.id}", storage_path=str(job.dir / "ray")),
    )
    follower = threading.Thread(target=follow_ranks, args=(job.dir / "logs", stop), daemon=True)
    follower.start()
    try:
        trainer.fit()
    except Exception as exc:  # the ranks' own reports are in errors/; this is Ray's view
        print(f"Ray Train failed: {type(exc).__name__}: {str(exc).splitlines()[0]}", flush=True)
        return 1
    finally:
        stop.set()
        follower.join(timeout=5)
    return 0


stop = threading.Event()


def follow_ranks(logs: Path, done: threading.Event) -> None:
    """Copy what the ranks print (``logs/ray-rank-N.out``) to this driver's stdout, once."""
    offsets: dict[Path, int] = {}
    out = sys.__stdout__
    assert out is not None
    while True:
        finished = done.is_set()
        for path in sorted(logs.glob(f"{RANK_OUTPUT}*.out")):
            with path.open("rb") as f:
                f.seek(offsets.get(path, 0))
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1 if not finished else len(chunk)
            if end:
                out.buffer.write(chunk[:end])
                out.flush()
                offsets[path] = offsets.get(path, 0) + end
        if finished:
            return
        done.wait(0.1)


def driver_main(argv: list[str]) -> int:
    """``python -m jupyter_mlops.distributed.ray_executor PARENT_PID JOBDIR``."""
    import signal

    from .procs import die_with_parent

    die_with_parent(signal.SIGTERM)
    if os.getppid() != int(argv[0]):  # the kernel died before prctl took effect
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # ray.init's atexit disconnects
    sys.stdout = WithoutRayPrefix(sys.__stdout__)
    sys.stderr = sys.stdout
    return drive(Path(argv[1]))


if __name__ == "__main__":
    sys.exit(driver_main(sys.argv[1:]))
