"""Interrupts and restarts of a real ipykernel running %%distributed leave no process behind."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from tests.process_support import survivors

LONG_CELL = (
    "%%distributed -n 2\n"
    "import time\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    time.sleep(0.1)\n"
)


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[tuple[KernelManager, Any]]:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(tmp_path), env={**os.environ, "MLOPS_HOME": str(tmp_path)})
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    try:
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def new_job(home: Path, known: set[Path]) -> Path:
    """Wait for a job whose two workers registered their pids; return its folder."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for job_dir in set((home / "jobs").glob("*")) - known:
            if len(list((job_dir / "pids").glob("rank-*.json"))) == 2:
                return job_dir
        time.sleep(0.1)
    raise AssertionError("the job's workers never started")


def job_pids(job_dir: Path) -> list[int]:
    state = json.loads((job_dir / "state.json").read_text())
    workers = [json.loads(p.read_text())["pid"] for p in (job_dir / "pids").glob("rank-*.json")]
    return [state["agent_pid"], *workers]


def reply_to(client: Any, msg_id: str) -> dict[str, Any]:
    while True:
        reply: dict[str, Any] = client.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


def test_interrupts_and_restart_leave_no_worker(
    kernel: tuple[KernelManager, Any], tmp_path: Path
) -> None:
    manager, client = kernel
    assert reply_to(client, client.execute("%load_ext jupyter_mlops"))["content"]["status"] == "ok"
    kernel_pid = manager.provisioner.process.pid  # type: ignore[union-attr]
    interrupts: list[tuple[str, Callable[[], None]]] = [
        ("process group", manager.interrupt_kernel),  # what JupyterLab's interrupt does
        ("kernel pid only", lambda: os.kill(kernel_pid, signal.SIGINT)),  # some gateways
    ]
    seen: set[Path] = set()
    for how, interrupt in interrupts:
        msg_id = client.execute(LONG_CELL, stop_on_error=False)
        job_dir = new_job(tmp_path, seen)
        seen.add(job_dir)
        pids = job_pids(job_dir)
        interrupt()
        reply = reply_to(client, msg_id)["content"]
        assert reply["status"] == "error" and reply["ename"] == "DistributedCancelled", how
        assert reply["evalue"] == f"job {job_dir.name} cancelled, all ranks stopped", how
        assert survivors(pids, 2) == [], how  # stopped before the cell returned
        assert json.loads((job_dir / "state.json").read_text())["state"] == "cancelled"

    client.execute(LONG_CELL, stop_on_error=False)
    job_dir = new_job(tmp_path, seen)
    pids = job_pids(job_dir)
    manager.restart_kernel(now=True)  # SIGKILLs the kernel: only PDEATHSIG can clean up
    assert survivors(pids, 20) == []


def output_until(client: Any, text: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = client.get_iopub_msg(timeout=seconds)
        if message["msg_type"] == "stream" and text in message["content"]["text"]:
            return
    raise AssertionError(f"{text!r} never appeared")


def test_interrupting_a_pool_cell(kernel: tuple[KernelManager, Any], tmp_path: Path) -> None:
    manager, client = kernel
    for code in ("%load_ext jupyter_mlops", "%distributed pool start -n 2"):
        assert reply_to(client, client.execute(code))["content"]["status"] == "ok"
    pool_dir = new_job(tmp_path, set())
    pids = job_pids(pool_dir)

    # Every rank is in Python code: Ctrl-C stops the cell and the pool keeps its variables.
    msg_id = client.execute(
        "%%distributed\nimport time\nkept = 41 + rank\nprint('ready', flush=True)\n"
        "while True:\n    time.sleep(0.05)\n",
        stop_on_error=False,  # the next cell, sent right after the error reply, is not aborted
    )
    output_until(client, "[rank 0] ready")
    manager.interrupt_kernel()
    reply = reply_to(client, msg_id)["content"]
    assert (reply["status"], reply["ename"]) == ("error", "DistributedCancelled")
    assert reply["evalue"] == (
        f"pool cell cancelled, all ranks stopped (pool {pool_dir.name}); the pool keeps its state"
    )
    msg_id = client.execute("%%distributed --pull kept\npass")
    assert reply_to(client, msg_id)["content"]["status"] == "ok"
    assert reply_to(client, client.execute("assert kept == 41"))["content"]["status"] == "ok"
    assert survivors(pids, 0) == pids

    # Rank 0 waits in a collective that rank 1 never joins: only a restart gets it out.
    # Rank 1 says ready only once rank 0 is inside the collective (a flag file, then a pause),
    # so the interrupt cannot reach rank 0 while it is still in Python code.
    flag = str(tmp_path / "rank0-entering")
    msg_id = client.execute(
        "%%distributed --all-logs\nimport os, time, torch, torch.distributed as dist\n"
        f"flag = {flag!r}\n"
        "if rank == 0:\n    open(flag, 'w').close()\n    dist.all_reduce(torch.ones(1))\n"
        "while not os.path.exists(flag):\n    time.sleep(0.05)\ntime.sleep(0.5)\n"
        "print('ready', flush=True)\nwhile True:\n    time.sleep(0.05)\n",
        stop_on_error=False,  # as above: the cell sent after its error reply must run
    )
    output_until(client, "[rank 1] ready")
    os.kill(manager.provisioner.process.pid, signal.SIGINT)  # type: ignore[union-attr]
    reply = reply_to(client, msg_id)["content"]
    assert reply["ename"] == "DistributedCancelled"
    assert reply["evalue"] == (
        "pool cell cancelled; rank(s) 0 did not stop at the interrupt (stuck in a "
        "collective?), so the pool was restarted and its variables are gone"
    )
    assert survivors(pids, 10) == []
    pool_dir = new_job(tmp_path, {pool_dir})
    pids = job_pids(pool_dir)
    msg_id = client.execute("%%distributed\nresult = world_size")
    assert reply_to(client, msg_id)["content"]["status"] == "ok"

    manager.restart_kernel(now=True)  # the pool's agent and ranks die with the kernel
    assert survivors(pids, 20) == []
