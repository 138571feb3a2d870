"""``%%distributed --executor kubernetes --export``: a PyTorchJob checked by Kubeflow's own SDK.

The manifest is validated by ``tests/kubeflow_schema.py`` in ``.venv-k8s`` (the
``kubeflow-training`` SDK's generated models, never a schema of ours), and the container's
command is run here under the environment the training operator gives a Master pod, so the
worker it names really runs. Creating and following the job on a cluster needs a kubectl
context and is not tested (see the README).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from IPython.core.error import UsageError

from tests.lab_server import free_port

REPO = Path(__file__).resolve().parent.parent
KUBEFLOW_PYTHON = REPO / ".venv-k8s" / "bin" / "python"
CELL = "import torch.distributed as dist\nresult = (rank, world_size, dist.get_backend())\n"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    if not KUBEFLOW_PYTHON.exists():
        pytest.fail(f"{KUBEFLOW_PYTHON} is missing: run .ci/run", pytrace=False)
    return subprocess.run(
        [str(KUBEFLOW_PYTHON), str(REPO / "tests" / "kubeflow_schema.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_export_writes_a_pytorchjob_kubeflow_accepts(ip: Any) -> None:
    line = (
        "--executor kubernetes --export -n 2 --nnodes 3 --image repo/train:1 "
        "--gpus-per-rank 1 --timeout 900"
    )
    result = ip.run_cell_magic("distributed", line, CELL)
    assert (result.state, result.world_size, result.executor) == ("exported", 6, "kubernetes")
    path = result.job_dir / "pytorchjob.yaml"
    assert result.scheduler_id == str(path)
    checked = validate(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout.splitlines()[-1])["replicas"] == ["Master", "Worker"]

    manifest = yaml.safe_load(path.read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    spec = manifest["spec"]
    assert spec["nprocPerNode"] == "2" and spec["runPolicy"]["activeDeadlineSeconds"] == 900
    master, worker = spec["pytorchReplicaSpecs"]["Master"], spec["pytorchReplicaSpecs"]["Worker"]
    assert (master["replicas"], worker["replicas"]) == (1, 2)
    container = worker["template"]["spec"]["containers"][0]
    assert container["image"] == "repo/train:1" and container["name"] == "pytorch"
    assert container["command"][:3] == ["python", "-m", "torch.distributed.run"]
    assert container["command"][-2:] == ["jupyter_mlops.distributed.worker", str(result.job_dir)]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    mount = container["volumeMounts"][0]["mountPath"]
    assert str(result.job_dir).startswith(mount + os.sep)

    rows = {j.job_id: j.state for j in ip.run_line_magic("distributed", "status").jobs}
    assert rows[result.job_id] == "exported"
    assert ip.run_line_magic("distributed", "cancel").cancelled == []


def test_the_schema_check_refuses_what_kubeflow_does_not_know(tmp_path: Path, ip: Any) -> None:
    result = ip.run_cell_magic(
        "distributed", f"--executor kubernetes --export {tmp_path / 'job.yaml'} -n 1", CELL
    )
    assert result.scheduler_id == str(tmp_path / "job.yaml")
    manifest = yaml.safe_load((tmp_path / "job.yaml").read_text())
    manifest["spec"]["pytorchReplicaSpecs"]["Master"]["replicaz"] = 2
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(manifest))
    typo = validate(tmp_path / "typo.yaml")
    assert typo.returncode == 1 and "replicaz: not in the PyTorchJob schema" in typo.stdout

    del manifest["spec"]["pytorchReplicaSpecs"]["Master"]["replicaz"]
    del manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0][
        "name"
    ]
    (tmp_path / "unnamed.yaml").write_text(yaml.safe_dump(manifest))
    unnamed = validate(tmp_path / "unnamed.yaml")
    assert unnamed.returncode == 1 and "`name`, must not be `None`" in unnamed.stderr


def test_the_exported_command_runs_the_cell_as_a_master_pod_would(ip: Any) -> None:
    result = ip.run_cell_magic("distributed", "--executor kubernetes --export -n 2", CELL)
    manifest = yaml.safe_load((result.job_dir / "pytorchjob.yaml").read_text())
    container = manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][
        0
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    # What the training operator sets in a Master pod; torchrun reads PET_* by itself.
    env.update(
        PET_NNODES="1",
        PET_NODE_RANK="0",
        PET_NPROC_PER_NODE=manifest["spec"]["nprocPerNode"],
        PET_MASTER_ADDR="127.0.0.1",
        PET_MASTER_PORT=str(free_port()),
        OMP_NUM_THREADS="1",
    )
    command = [sys.executable, *container["command"][1:]]
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    waited = ip.run_line_magic("distributed", f"wait {result.job_id} --timeout 10")
    assert waited.values["result"] == (0, 2, "gloo")


def test_kubernetes_without_a_cluster_is_one_line(
    ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no kubectl here
    with pytest.raises(UsageError, match=r"kubectl not found on PATH; .* use --export"):
        ip.run_cell_magic("distributed", "--executor kubernetes -n 2", CELL)
    with pytest.raises(UsageError, match="--image takes an image reference"):
        ip.run_cell_magic("distributed", "--executor kubernetes --export --image 'a b'", CELL)
    with pytest.raises(UsageError, match="--image is an option of --executor kubernetes"):
        ip.run_cell_magic("distributed", "--image repo/x:1 -n 2", CELL)
