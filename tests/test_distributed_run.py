"""%%distributed with real torchrun agents and 2 gloo ranks on CPU (each launch costs seconds)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.distributed import DistributedCellError, DistributedTimeout, job
from jupyter_mlops.distributed.executors import LocalTorchrun
from jupyter_mlops.distributed.job import JobSpec, create_job
from jupyter_mlops.tracking import active
from jupyter_mlops.tracking.client import mlflow_client
from tests.process_support import alive

LOOP_FOREVER = "import time\nprint('ready', flush=True)\nwhile True:\n    time.sleep(0.1)\n"


def job_pids(job_dir: Path) -> list[int]:
    state = json.loads((job_dir / "state.json").read_text())
    workers = [json.loads(p.read_text())["pid"] for p in (job_dir / "pids").glob("rank-*.json")]
    return [state["agent_pid"], *workers] if "agent_pid" in state else workers


def wait_until(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def only_job() -> Path:
    (job_dir,) = (current_settings().home / "jobs").iterdir()
    return job_dir


def test_cell_all_reduces_pushes_pulls_and_logs_to_the_active_run(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = current_settings()
    client = mlflow_client(settings.tracking_uri)
    run_id = client.create_run(client.create_experiment("dist")).info.run_id
    ip.run_cell(
        "weight = 2.0\n"
        "def scale(x):\n    return 10 * x\n"
        "class Box:\n    def __init__(self, v):\n        self.v = v\n"
    )
    cell = (
        "import os, torch, torch.distributed as dist\n"
        "x = torch.tensor([float(rank + 1)]) * weight\n"
        "dist.all_reduce(x)\n"
        "print(f'rank {rank}/{world_size} local {local_rank} on {device}: {x.item()}')\n"
        "class MadeHere:\n    tag = 'cell class'\n"
        "result = scale(x.item())\n"
        "box, made = Box(rank), MadeHere()\n"
        "run_seen = os.environ.get('MLFLOW_RUN_ID')\n"
    )
    tracked = active.ActiveRun(run_id, settings.tracking_uri)
    active.push(tracked)
    try:
        out = ip.run_cell_magic(
            "distributed", "-n 2 --push weight,scale,Box --pull result,box,made,run_seen", cell
        )
    finally:
        active.pop(tracked)
    assert repr(out) == (
        "DistributedResult(state='ok', world_size=2, nnodes=1, backend='gloo', "
        "executor='local', pulled=['box', 'made', 'result', 'run_seen'])"
    )
    ns = ip.user_ns
    assert ns["result"] == 60.0  # (1 + 2) * 2.0 summed over ranks, then scaled by 10
    assert ns["box"].v == 0 and type(ns["box"]).__name__ == "Box"
    assert ns["made"].tag == "cell class" and ns["run_seen"] == run_id
    printed = capsys.readouterr().out
    assert "[rank 0] rank 0/2 local 0 on cpu: 6.0" in printed
    assert "[rank 1]" not in printed  # rank 0 only by default...
    logs = out.job_dir / "logs"
    assert "rank 1/2 local 1 on cpu: 6.0" in (logs / "rank-1.log").read_text()  # ...all in files
    assert json.loads((out.job_dir / "state.json").read_text())["state"] == "ok"
    run = client.get_run(run_id)
    assert run.data.params["distributed.world_size"] == "2"
    assert run.data.params["distributed.backend"] == "gloo"
    artifacts = {a.path for a in client.list_artifacts(run_id, f"distributed/{out.job_id}")}
    prefix = f"distributed/{out.job_id}/"
    assert {prefix + "rank-0.log", prefix + "rank-1.log", prefix + "cell.py"} <= artifacts


def test_failing_rank_raises_with_its_cell_traceback() -> None:
    lines: list[str] = []
    cell = (
        "import torch.distributed as dist\n"
        "print('before the failure', flush=True)\n"
        "if rank == 1:\n"
        "    {}['missing']\n"
        "dist.barrier()\n"
    )
    states: list[str] = []
    with pytest.raises(DistributedCellError) as caught:
        mlops.distributed.run(cell, n=2, all_logs=True, sink=lines.append, on_status=states.append)
    error = caught.value
    assert error.rank == 1
    assert str(error).startswith("rank 1 of 2 failed: KeyError: 'missing'")
    assert 'File "<cell>", line 4, in <module>' in error.remote_traceback
    assert "{}['missing']" in error.remote_traceback
    assert "worker.py" not in error.remote_traceback  # the bootstrap's frames are trimmed
    assert [f.rank for f in error.others] in ([], [0])  # rank 0 failed later, or was stopped
    assert "[rank 1] before the failure" in lines  # --all-logs streams every rank
    assert "[rank 1] rank 1 failed: KeyError: 'missing'" in lines  # one line, not a traceback
    assert states[-1].startswith("ranks started 2/2: 0 ") and states[-1].endswith(", 1 failed")
    job_dir = only_job()
    assert json.loads((job_dir / "state.json").read_text())["state"] == "failed"
    assert alive(job_pids(job_dir)) == []


def test_killed_agent_takes_its_workers_with_it() -> None:
    """SIGKILL to the torchrun agent: no shutdown code runs, the workers' PDEATHSIG must act."""
    killed: list[int] = []

    def kill_agent_once_ready(line: str) -> None:
        if line == "[rank 0] ready" and not killed:
            job_dir = only_job()
            assert wait_until(lambda: len(list((job_dir / "pids").glob("*.json"))) == 2, 30)
            killed.extend(job_pids(job_dir))
            psutil.Process(killed[0]).kill()

    with pytest.raises(DistributedCellError, match="torchrun agent was killed by signal 9"):
        mlops.distributed.run(LOOP_FOREVER, n=2, sink=kill_agent_once_ready)
    assert len(killed) == 3
    assert wait_until(lambda: not alive(killed), 15), alive(killed)


def test_timeout_stops_every_rank() -> None:
    start = time.monotonic()
    with pytest.raises(DistributedTimeout, match="ran past --timeout 10 s; every rank was stopped"):
        mlops.distributed.run(LOOP_FOREVER, n=2, timeout=10, sink=lambda line: None)
    assert time.monotonic() - start < 40
    job_dir = only_job()
    assert len(job_pids(job_dir)) == 3  # the workers had started before the deadline
    assert alive(job_pids(job_dir)) == []
    assert json.loads((job_dir / "state.json").read_text())["state"] == "timeout"


def test_cancel_stops_a_job_left_running(ip: Any) -> None:
    """A job whose kernel went away without cleanup: %distributed status / cancel find it."""
    spec = JobSpec(nproc_per_node=2, backend="gloo")
    job = create_job(current_settings().home, LOOP_FOREVER, spec, {})
    agent = LocalTorchrun().launch(job)
    job.set_state("running", agent_pid=agent.pid, host=socket.gethostname())
    try:
        assert wait_until(lambda: len(job.worker_pids()) == 2, 30)
        before = ip.run_line_magic("distributed", "status")
        assert [(j.state, j.live_processes) for j in before.jobs] == [("running", 3)]
        pids = job_pids(job.dir)
        after = ip.run_line_magic("distributed", f"cancel {job.id}")
        assert after.cancelled == [job.id]
        assert [(j.state, j.live_processes) for j in after.jobs] == [("cancelled", 0)]
        assert alive(pids) == []
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_two_nodes_rendezvous_on_loopback() -> None:
    """Two torchrun agents, one rank each: the notebook's node plus one joined by its command."""
    joiners: list[subprocess.Popen[bytes]] = []

    def start_the_other_node(text: str) -> None:
        if "on each, run:" in text:
            command = text.split("run:\n", 1)[1]
            joiners.append(subprocess.Popen(command, shell=True, start_new_session=True))

    cell = (
        "import torch, torch.distributed as dist\n"
        "x = torch.tensor([float(rank + 1)])\n"
        "dist.all_reduce(x)\n"
        "result = (x.item(), world_size, rank)\n"
    )
    states: list[str] = []
    try:
        out = mlops.distributed.run(
            cell,
            n=1,
            nnodes=2,
            rdzv=f"127.0.0.1:{free_port()}",
            sink=start_the_other_node,
            on_status=states.append,
        )
        assert states[-1] == "ranks started 2/2: 0 done, 1 done"
        assert out.values["result"] == (3.0, 2, 0)
        assert (out.world_size, out.nnodes, out.executor) == (2, 2, "multinode")
        assert joiners[0].wait(timeout=30) == 0
        assert (out.job_dir / "pids" / "rank-1.json").exists()  # the joined node's rank ran
    finally:
        for joiner in joiners:
            if joiner.poll() is None:  # the shell and the torchrun it started share a group
                os.killpg(joiner.pid, signal.SIGKILL)


def test_a_large_push_warns_at_the_callers_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job, "LARGE_PUSH_BYTES", 1000)
    with pytest.warns(UserWarning, match="to every rank") as caught:
        out = mlops.distributed.run(
            "result = len(big)", n=1, push={"big": b"x" * 2000}, sink=lambda line: None
        )
    assert out.values["result"] == 2000
    assert [w.filename for w in caught if "to every rank" in str(w.message)] == [__file__]
