"""``--executor kubernetes``: the cell as a Kubeflow ``PyTorchJob`` (training-operator, v1).

Every replica's container runs ``torch.distributed.run -m jupyter_mlops.distributed.worker
JOBDIR``; the operator sets ``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK`` and the
master address, which torchrun reads by itself, so the worker is the same one the local,
Slurm and Ray paths run. The job folder must be the same path in every pod: the store's home is
mounted from the ``PersistentVolumeClaim`` named :data:`HOME_CLAIM` at that same path.

``--export [PATH]`` writes the manifest (``<job>/pytorchjob.yaml`` by default) and starts
nothing. Without it the manifest is created with ``kubectl`` in the current context; the job is
then followed like a Slurm job (``%distributed status``, ``wait``, ``cancel`` deletes it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, ClassVar

from ..errors import MLOpsUsageError
from .executors import Executor, job_env, register
from .job import Job

API_VERSION = "kubeflow.org/v1"
KIND = "PyTorchJob"
CONTAINER = "pytorch"  # the training operator finds the container by this name
HOME_CLAIM = "jupyter-mlops-home"
HOME_VOLUME = "mlops-home"
DEFAULT_IMAGE = "pytorch/pytorch:latest"
MANIFEST_FILE = "pytorchjob.yaml"
KUBECTL_TIMEOUT_S = 60
CONDITIONS = {"Created": "queued", "Running": "running", "Restarting": "running"}
CONDITIONS.update(Succeeded="done", Failed="failed")


def job_name(job: Job) -> str:
    """A DNS-1123 name for the job (lower case, digits and dashes)."""
    return f"mlops-{job.id}".lower().replace("_", "-")


def worker_command(job: Job) -> list[str]:
    restarts = ["--max-restarts", str(job.spec.max_restarts)] if job.spec.max_restarts else []
    return [
        "python", "-m", "torch.distributed.run", *restarts,
        "--nproc-per-node", str(job.spec.nproc_per_node),
        "-m", "jupyter_mlops.distributed.worker", str(job.dir),
    ]  # fmt: skip


def replica(job: Job, replicas: int) -> dict[str, Any]:
    options = job.spec.options
    gpus = options.get("gpus_per_rank") or 0
    resources: dict[str, Any] = {}
    if gpus:
        count = str(gpus * job.spec.nproc_per_node)
        resources = {"limits": {"nvidia.com/gpu": count}, "requests": {"nvidia.com/gpu": count}}
    home = str(job.dir.parent.parent)
    container = {
        "name": CONTAINER,
        "image": options.get("image") or DEFAULT_IMAGE,
        "command": worker_command(job),
        "env": [{"name": k, "value": v} for k, v in sorted(job_env(job).items())],
        "resources": resources,
        "volumeMounts": [{"name": HOME_VOLUME, "mountPath": home}],
    }
    return {
        "replicas": replicas,
        "restartPolicy": "Never",
        "template": {
            "metadata": {"labels": {"jupyter-mlops/job": job.id}},
            "spec": {
                "containers": [container],
                "volumes": [
                    {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": HOME_CLAIM}}
                ],
            },
        },
    }


def manifest(job: Job) -> dict[str, Any]:
    """The ``PyTorchJob`` for ``job``: one Master and ``nnodes - 1`` Workers."""
    specs = {"Master": replica(job, 1)}
    if job.spec.nnodes > 1:
        specs["Worker"] = replica(job, job.spec.nnodes - 1)
    run_policy: dict[str, Any] = {"cleanPodPolicy": "Running", "backoffLimit": 0}
    if job.spec.timeout:
        run_policy["activeDeadlineSeconds"] = int(job.spec.timeout)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": job_name(job), "labels": {"jupyter-mlops/job": job.id}},
        "spec": {
            "nprocPerNode": str(job.spec.nproc_per_node),
            "runPolicy": run_policy,
            "pytorchReplicaSpecs": specs,
        },
    }


def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("kubectl")
    if tool is None:
        raise MLOpsUsageError(
            "kubectl not found on PATH; --executor kubernetes needs a cluster context, "
            "or use --export to write the PyTorchJob manifest"
        )
    try:
        return subprocess.run(
            [tool, *args], input=stdin, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise MLOpsUsageError(
            f"kubectl {args[0]} did not answer in {KUBECTL_TIMEOUT_S} s; is the cluster reachable?"
        ) from None


@register
class Kubernetes(Executor):
    """A Kubeflow ``PyTorchJob``: exported as YAML, or created with kubectl (does not wait)."""

    name = "kubernetes"
    waits = False
    remote = True
    options: ClassVar[tuple[str, ...]] = ("export", "image", "gpus_per_rank")

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        gpus = options.get("gpus_per_rank")
        if gpus is not None and (not isinstance(gpus, int) or gpus < 0):
            raise MLOpsUsageError(f"--gpus-per-rank takes a whole number >= 0, got {gpus!r}")
        image = options.get("image")
        if image is not None and (not image.strip() or any(c.isspace() for c in image)):
            raise MLOpsUsageError(
                f"--image takes an image reference such as repo/name:tag, got {image!r}"
            )
        return options

    def export(self, job: Job) -> Path:
        import yaml

        target = job.spec.options.get("export")
        path = Path(target) if isinstance(target, str) else job.dir / MANIFEST_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(manifest(job), sort_keys=False))
        return path

    def launch(self, job: Job) -> str:
        path = self.export(job)
        if job.spec.options.get("export"):
            return str(path)
        context = kubectl("config", "current-context")
        if context.returncode != 0:
            raise MLOpsUsageError(
                "no Kubernetes context (kubectl config current-context failed); "
                f"the manifest is at {path}, or use --export"
            )
        created = kubectl("create", "-f", str(path))
        if created.returncode != 0:
            raise MLOpsUsageError(f"kubectl refused the PyTorchJob: {created.stderr.strip()}")
        return job_name(job)

    def scheduler_state(self, job: Job) -> str | None:
        name = job.state().get("slurm_job_id")
        if not name or job.state().get("state") == "exported" or not shutil.which("kubectl"):
            return None
        got = kubectl("get", KIND.lower(), str(name), "-o", "json")
        if got.returncode != 0:
            return None
        conditions = json.loads(got.stdout).get("status", {}).get("conditions", [])
        latest = [c["type"] for c in conditions if c.get("status") == "True"]
        return CONDITIONS.get(latest[-1], "running") if latest else "queued"

    def cancel(self, job: Job) -> None:
        name = job.state().get("slurm_job_id")
        if name and job.state().get("state") != "exported" and shutil.which("kubectl"):
            kubectl("delete", KIND.lower(), str(name), "--wait=false")
