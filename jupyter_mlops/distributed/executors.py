"""Launch executors, registered by name (as papermill registers engines).

Every executor runs the same worker bootstrap under torchrun; they differ in where torchrun
runs. ``local`` and ``multinode`` start an agent on this machine and the cell waits for it;
``slurm`` writes a batch script that runs ``srun torchrun`` and submits it with ``sbatch``;
``pool`` starts the warm pool's agent, whose ranks serve cell after cell (see ``pool.py``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ..errors import MLOpsUsageError
from .job import Job
from .logs import PREFIX_TEMPLATE
from .procs import stop

WORKER_MODULE = "jupyter_mlops.distributed.worker"
POOL_WORKER_MODULE = "jupyter_mlops.distributed.pool_worker"


class Executor(ABC):
    name: ClassVar[str]
    waits: ClassVar[bool] = True  # does the cell wait for the job (and stream its logs)?
    remote: ClassVar[bool] = False  # do other machines (not this one's GPUs) decide "auto"?
    options: ClassVar[tuple[str, ...]] = ()  # the JobRequest fields only this executor takes

    def scheduler_state(self, job: Job) -> str | None:
        """A submitted job's state at its scheduler: queued, running, done, failed, cancelled."""
        return None

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The given :attr:`options`, checked (one-line usage errors) and as JSON values."""
        return options

    @abstractmethod
    def launch(self, job: Job) -> subprocess.Popen[bytes] | str:
        """Start the job: the local agent process, or the scheduler's job id."""

    def cancel(self, job: Job) -> None:
        state = job.state()
        agent = state.get("agent_pid")
        stop(
            lambda: [p for p in (agent, *job.worker_pids().values()) if p],
            str(job.dir),
            first=agent,
        )


EXECUTORS: dict[str, type[Executor]] = {}


def register(cls: type[Executor]) -> type[Executor]:
    EXECUTORS[cls.name] = cls
    return cls


def get_executor(name: str) -> Executor:
    if name not in EXECUTORS:
        raise MLOpsUsageError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    return EXECUTORS[name]()


def job_env(job: Job) -> dict[str, str]:
    env = {
        "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": PREFIX_TEMPLATE,
        "PYTHONUNBUFFERED": "1",
    }
    if job.spec.gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, job.spec.gpus))
    if job.spec.mlflow_run_id and job.spec.mlflow_tracking_uri:
        env["MLFLOW_RUN_ID"] = job.spec.mlflow_run_id
        env["MLFLOW_TRACKING_URI"] = job.spec.mlflow_tracking_uri
    return env


def rendezvous_args(job: Job, endpoint: str) -> list[str]:
    return [
        "--nnodes", str(job.spec.nnodes),
        "--rdzv-backend", "c10d",
        "--rdzv-endpoint", endpoint,
        "--rdzv-id", job.id,
    ]  # fmt: skip


def torchrun_args(
    job: Job, placement: list[str], log_dir: str, module: str = WORKER_MODULE
) -> list[str]:
    restarts = ["--max-restarts", str(job.spec.max_restarts)] if job.spec.max_restarts else []
    return [
        *placement,
        *restarts,
        "--nproc-per-node", str(job.spec.nproc_per_node),
        "--log-dir", log_dir,
        "--tee", "3",
        "-m", module, str(job.dir),
    ]  # fmt: skip


@register
class LocalTorchrun(Executor):
    """One torchrun agent on this machine (``--standalone``: it picks a free port itself)."""

    name = "local"
    module = WORKER_MODULE

    def placement(self, job: Job) -> list[str]:
        return ["--standalone"]

    def agent_output(self, job: Job) -> Any:
        """Where the agent's output goes: a pipe the cell pumps while it waits."""
        return contextlib.nullcontext(subprocess.PIPE)

    def launch(self, job: Job) -> subprocess.Popen[bytes]:
        log_dir = str(job.dir / "torchrun" / "node-0")
        args = torchrun_args(job, self.placement(job), log_dir, self.module)
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        env.update(job_env(job))
        agent = [sys.executable, "-m", "jupyter_mlops.distributed.agent"]
        command = [*agent, str(os.getpid()), str(job.dir), "--"]
        with self.agent_output(job) as output:
            return subprocess.Popen(
                [*command, *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )


@register
class PoolTorchrun(LocalTorchrun):
    """The warm pool's agent: its ranks serve cells over ``control.json``'s socket until stopped.

    Nobody waits on this agent's output between cells, so it goes to ``logs/agent.log``; the
    ranks send their cells' output over the control connection instead.
    """

    name = "pool"
    module = POOL_WORKER_MODULE

    def agent_output(self, job: Job) -> Any:
        return (job.logs_dir / "agent.log").open("ab")


@register
class MultiNodeTorchrun(LocalTorchrun):
    """This machine is node 0 of ``--nnodes``; the others join through c10d at ``--rdzv``."""

    name = "multinode"

    def placement(self, job: Job) -> list[str]:
        assert job.spec.rdzv is not None
        return rendezvous_args(job, job.spec.rdzv)


def join_command(job: Job) -> str:
    """The command each other node runs to join ``job`` (the job folder must be shared)."""
    assert job.spec.rdzv is not None
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(job_env(job).items()))
    args = torchrun_args(job, rendezvous_args(job, job.spec.rdzv), str(job.dir / "torchrun"))
    return f"{env} {shlex.join([sys.executable, '-m', 'torch.distributed.run', *args])}"


SBATCH_TEMPLATE = """\
#!/bin/bash
#SBATCH --job-name=mlops-{job_id}
#SBATCH --nodes={nnodes}
#SBATCH --ntasks-per-node=1
#SBATCH --output={logs}/slurm-%j.out
{extra}
# Written by jupyter-mlops for %%distributed job {job_id}; every node runs one torchrun agent.
set -euo pipefail
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
{exports}
srun {python} -m torch.distributed.run \\
    --nnodes "$SLURM_NNODES" --rdzv-backend c10d --rdzv-endpoint "$head_node:{port}" \\
    --rdzv-id "$SLURM_JOB_ID" {rest}
"""


@register
class Slurm(Executor):
    """``sbatch`` a script that runs ``srun torchrun`` on ``--nnodes`` nodes; does not wait."""

    name = "slurm"
    waits = False
    remote = True
    options = ("partition", "account", "time", "sbatch")
    port = 29500

    def script(self, job: Job) -> str:
        extra = []
        if job.spec.backend != "gloo":
            extra.append(f"#SBATCH --gpus-per-node={job.spec.nproc_per_node}")
        options = job.spec.options
        for flag in ("partition", "account", "time"):
            if options.get(flag):
                extra.append(f"#SBATCH --{flag}={options[flag]}")
        if job.spec.timeout and not options.get("time"):
            extra.append(f"#SBATCH --time={max(1, -(-int(job.spec.timeout) // 60))}")
        extra.extend(options.get("sbatch", ()))
        exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in sorted(job_env(job).items()))
        rest = shlex.join(torchrun_args(job, [], str(job.dir / "torchrun")))
        return SBATCH_TEMPLATE.format(
            job_id=job.id,
            nnodes=job.spec.nnodes,
            logs=job.logs_dir,
            extra="\n".join(extra),
            exports=exports,
            python=shlex.quote(sys.executable),
            port=self.port,
            rest=rest,
        )

    def launch(self, job: Job) -> str:
        sbatch = shutil.which("sbatch")
        if sbatch is None:
            raise MLOpsUsageError("sbatch not found on PATH; --executor slurm needs a Slurm node")
        path = job.dir / "job.sbatch"
        path.write_text(self.script(job))
        done = subprocess.run([sbatch, "--parsable", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            raise MLOpsUsageError(f"sbatch refused the job: {done.stderr.strip()}")
        return done.stdout.strip().split(";")[0]

    def cancel(self, job: Job) -> None:
        slurm_id = job.state().get("slurm_job_id")
        scancel = shutil.which("scancel")
        if slurm_id and scancel:
            subprocess.run([scancel, str(slurm_id)], capture_output=True, check=False, timeout=30)

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        lines = options.get("sbatch", ())
        lines = [lines] if isinstance(lines, str) else list(lines)
        checked = {**options, "sbatch": [slurm_line(line) for line in lines]}
        for flag in ("partition", "account", "time"):
            value = checked.get(flag)
            if value is not None and (
                not str(value).strip() or any(c.isspace() for c in str(value))
            ):
                raise MLOpsUsageError(f"--{flag} takes one word, got {value!r}")
        return {k: v for k, v in checked.items() if v not in (None, [])}

    def scheduler_state(self, job: Job) -> str | None:
        from .slurm import slurm_state

        slurm_id = job.state().get("slurm_job_id")
        return slurm_state(str(slurm_id)) if slurm_id else None


def slurm_line(line: str) -> str:
    """One extra ``#SBATCH`` line as given (with or without ``#SBATCH``), on one line only."""
    text = line.strip().removeprefix("#SBATCH").strip()
    if not text.startswith("-") or "\n" in text:
        raise MLOpsUsageError(
            f"--sbatch {line!r}: give one sbatch option such as '--mem=4G' (one per --sbatch)"
        )
    return f"#SBATCH {text}"
