"""``%%distributed sbatch`` through a real single-node Slurm (slurmctld + slurmd + munged).

The cluster comes from tests/engines_compute.py (``slurm_cluster``, once per session). Every job
runs ``srun torchrun`` with two gloo ranks on this machine; every wait is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from jupyter_mlops.distributed import DistributedCellError
from tests.engines_compute import SlurmCluster

JOB_WAIT_S = 120.0
CELL = """\
import os
import torch
import torch.distributed as dist
t = torch.tensor([rank + 1.0])
dist.all_reduce(t)
print(f"hello from {rank} of {world_size}", flush=True)
result = (t.item(), world_size, os.environ["SLURM_JOB_ID"])
"""


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    return slurm_cluster


def poll(check: Callable[[], Any], what: str, timeout: float = JOB_WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"waited {timeout:g} s for {what}"
        time.sleep(0.2)
    return value


def test_sbatch_runs_a_real_job_and_wait_pulls_its_result(
    ip: Any, slurm: SlurmCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    line = (
        "sbatch --nnodes 1 -n 2 --backend gloo --partition mlops --account research "
        "--time 00:05:00 --sbatch=--comment=mlops-test --sbatch '#SBATCH --job-name=mine'"
    )
    submitted = ip.run_cell_magic("distributed", line, CELL)
    assert submitted.state == "submitted" and submitted.scheduler_id
    shown = slurm.show_job(submitted.scheduler_id)
    assert (shown["Partition"], shown["Account"], shown["TimeLimit"]) == (
        "mlops",
        "research",
        "00:05:00",
    )
    assert shown["Comment"] == "mlops-test" and shown["JobName"] == "mine"

    done = ip.run_line_magic("distributed", f"wait {submitted.job_id} --timeout {JOB_WAIT_S}")
    assert (done.state, done.scheduler_id) == ("ok", submitted.scheduler_id)
    assert ip.user_ns["result"] == (3.0, 2, submitted.scheduler_id)
    assert "[rank 0] hello from 0 of 2" in capsys.readouterr().out
    logs = done.job_dir / "logs"
    assert "hello from 1 of 2" in (logs / "rank-1.log").read_text()
    assert (logs / f"slurm-{submitted.scheduler_id}.out").exists()
    poll(lambda: slurm.job_state(submitted.scheduler_id) == "COMPLETED", "COMPLETED")
    rows = {j.job_id: j.state for j in ip.run_line_magic("distributed", "status").jobs}
    assert rows[submitted.job_id] == "ok"


def test_cancel_reaches_scancel_and_status_follows_slurm(ip: Any, slurm: SlurmCluster) -> None:
    cell = "import time\nprint('started', flush=True)\ntime.sleep(600)\n"
    submitted = ip.run_cell_magic("distributed", "sbatch -n 2 --backend gloo", cell)
    slurm_id = submitted.scheduler_id
    poll(lambda: slurm.job_state(slurm_id) == "RUNNING", "the job to run")
    rank_log = submitted.job_dir / "logs" / f"slurm-{slurm_id}.out"
    poll(lambda: rank_log.exists() and "started" in rank_log.read_text(), "a rank to start")
    status = ip.run_line_magic("distributed", "status")
    assert {j.job_id: j.state for j in status.jobs}[submitted.job_id] == "running"

    cancelled = ip.run_line_magic("distributed", f"cancel {submitted.job_id}")
    assert cancelled.cancelled == [submitted.job_id]
    poll(lambda: slurm.job_state(slurm_id) == "CANCELLED", "Slurm to cancel the job", 30)
    poll(lambda: not job_processes(submitted.job_dir), "the ranks to end", 30)
    rows = {j.job_id: j.state for j in ip.run_line_magic("distributed", "status").jobs}
    assert rows[submitted.job_id] == "cancelled"


def test_a_failing_rank_raises_from_wait_with_its_traceback(ip: Any, slurm: SlurmCluster) -> None:
    cell = "x = 1\nif rank == 1:\n    raise ValueError('rank one is broken')\n"
    submitted = ip.run_cell_magic("distributed", "sbatch -n 2 --backend gloo", cell)
    with pytest.raises(DistributedCellError) as caught:
        ip.run_line_magic("distributed", f"wait --timeout {JOB_WAIT_S}")
    error = caught.value
    assert error.rank == 1 and error.job_id == submitted.job_id
    assert "ValueError: rank one is broken" in str(error)
    assert 'File "<cell>", line 3' in str(error)
    rows = {j.job_id: j.state for j in ip.run_line_magic("distributed", "status").jobs}
    assert rows[submitted.job_id] == "failed"


def test_slurm_options_are_checked_before_anything_is_submitted(ip: Any) -> None:
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="--partition is an option of --executor slurm"):
        ip.run_cell_magic("distributed", "--partition gpu -n 2", "x = 1\n")
    with pytest.raises(UsageError, match="give one sbatch option"):
        ip.run_cell_magic("distributed", "sbatch --sbatch 'mem 4G'", "x = 1\n")
    with pytest.raises(UsageError, match="--time takes one word"):
        ip.run_cell_magic("distributed", "sbatch --time '1 day'", "x = 1\n")


def job_processes(job_dir: Any) -> list[int]:
    """Processes whose command line names the job folder (torchrun and its ranks)."""
    from pathlib import Path

    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(job_dir).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found
