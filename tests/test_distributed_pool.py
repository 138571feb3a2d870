"""The warm pool with a real torchrun agent and 2 gloo ranks on CPU."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError

from jupyter_mlops.distributed import DistributedCellError, DistributedTimeout, pool
from tests.process_support import survivors

ALL_REDUCE = (
    "import torch, torch.distributed as dist\n"
    "x = torch.tensor([float(rank + 1)])\n"
    "dist.all_reduce(x)\n"
    "result = x.item()\n"
)


def pool_pids() -> list[int]:
    running = pool.running()
    assert running is not None
    return [running.agent.pid, *running.pids.values()]


@pytest.fixture
def stopped_after() -> Iterator[None]:
    yield
    pool.stop()


def test_pool_keeps_state_and_survives_failing_cells(
    ip: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stopped_after: None,
) -> None:
    monkeypatch.setattr(pool, "PEER_GRACE_S", 1.0)  # 5 s by default
    started = ip.run_line_magic("distributed", "pool start -n 2 --backend gloo")
    assert (
        repr(started) == "DistributedPool(state='running', world_size=2, backend='gloo', cells=0)"
    )
    first_pids = pool_pids()

    ip.run_cell("offset = 100.0")
    out = ip.run_cell_magic("distributed", "--push offset", "state = offset + rank\n" + ALL_REDUCE)
    assert out.executor == "pool" and ip.user_ns["result"] == 3.0
    out = ip.run_cell_magic(
        "distributed", "--pull state,seen", "print('state', state)\nseen = offset\n"
    )
    assert out.values == {"state": 100.0, "seen": 100.0}  # rank 0's globals from the last cell
    assert "[rank 0] state 100.0" in capsys.readouterr().out

    for _ in range(3):  # a round trip's time: tests/benchmarks/bench_distributed.py
        ip.run_cell_magic("distributed", "", ALL_REDUCE)

    # Every rank finishes (one with an error): the pool keeps its processes and its state.
    with pytest.raises(DistributedCellError) as caught:
        ip.run_cell_magic("distributed", "", "if rank == 1:\n    {}['missing']\n")
    assert caught.value.rank == 1
    assert str(caught.value).startswith("rank 1 of 2 failed: KeyError: 'missing' (pool ")
    assert 'File "<cell>", line 2, in <module>' in caught.value.remote_traceback
    assert ip.run_cell_magic("distributed", "--pull state", "pass")["state"] == 100.0
    assert pool_pids() == first_pids

    # Rank 1 fails while rank 0 waits for it in a collective: the pool restarts itself.
    failing = "import torch.distributed as dist\nif rank == 1:\n    1 / 0\ndist.barrier()\n"
    with pytest.raises(DistributedCellError, match="so the pool was restarted") as caught:
        ip.run_cell_magic("distributed", "", failing)
    assert caught.value.rank == 1
    assert "restarting the pool: rank(s) 0 were still running 1 s after rank 1 failed" in (
        capsys.readouterr().out
    )
    assert survivors(first_pids, 10) == []
    assert ip.run_cell_magic("distributed", "", ALL_REDUCE)["result"] == 3.0
    with pytest.raises(DistributedCellError, match="NameError: name 'state' is not defined"):
        ip.run_cell_magic("distributed", "", "state")

    # A one-shot job still runs beside the pool with --fresh, in its own job folder.
    fresh = ip.run_cell_magic("distributed", "--fresh -n 2", "result = world_size")
    assert (fresh.executor, fresh["result"]) == ("local", 2)
    with pytest.raises(UsageError, match="-n 3 does not match the running pool"):
        ip.run_cell_magic("distributed", "-n 3", "result = 1")

    pools = [j for j in ip.run_line_magic("distributed", "status").jobs if j.executor == "pool"]
    assert [(j.state, j.live_processes) for j in pools] == [("running", 3), ("stopped", 0)]
    pids = pool_pids()
    assert repr(ip.run_line_magic("distributed", "pool stop")) == "DistributedPool(state='stopped')"
    assert survivors(pids, 0.5) == []  # stopped before the magic returned
    assert repr(ip.run_line_magic("distributed", "pool status")) == (
        "DistributedPool(state='stopped')"
    )
    assert pool.running() is None  # cells are one-shot jobs again


def test_hung_collective_is_reported_and_restart_recovers(ip: Any, stopped_after: None) -> None:
    ip.run_line_magic("distributed", "pool start -n 2 --timeout 60")
    hung = (
        "import torch, torch.distributed as dist\n"
        "if rank == 0:\n"
        "    dist.all_reduce(torch.ones(1))\n"
    )
    began = time.monotonic()
    with pytest.raises(DistributedTimeout) as caught:
        ip.run_cell_magic("distributed", "--timeout 2", hung)
    assert 2 <= time.monotonic() - began < 30  # the cell's 2 s, not the pool's 60 s
    assert str(caught.value).startswith(
        "pool cell ran past --timeout 2 s: rank(s) 0 did not finish a cell within 2 s while "
        "rank(s) 1 did; usually a collective that not every rank called. "
        "Run %distributed pool restart"
    )
    status = ip.run_line_magic("distributed", "pool status")
    assert status.state == "stuck"
    with pytest.raises(UsageError, match=r"the pool is stuck .* run %distributed pool restart"):
        ip.run_cell_magic("distributed", "", "result = 1")
    stuck_pids = pool_pids()

    restarted = ip.run_line_magic("distributed", "pool restart")
    assert (restarted.state, restarted.world_size, restarted.cells) == ("running", 2, 0)
    assert survivors(stuck_pids, 10) == []
    assert ip.run_cell_magic("distributed", "", ALL_REDUCE)["result"] == 3.0
    job = json.loads((restarted.job_dir / "job.json").read_text())
    assert (job["executor"], job["timeout"]) == ("pool", 90.0)  # the ranks' own limit is later


def test_pool_verbs_are_checked(ip: Any) -> None:
    with pytest.raises(UsageError, match="no pool to restart"):
        ip.run_line_magic("distributed", "pool restart")
    with pytest.raises(UsageError, match=r"pool start\|stop\|restart\|status"):
        ip.run_line_magic("distributed", "pool frobnicate")
    with pytest.raises(UsageError, match="cells use the pool by themselves"):
        ip.run_cell_magic("distributed", "--executor pool", "result = 1")


def test_a_ctrl_c_that_reaches_a_rank_before_its_cell_starts_stops_that_cell() -> None:
    """A loaded machine delays a rank: the kernel's SIGINT can arrive while the cell is still in
    the pipe (or just received). It must stop that cell, and one between cells must not stop
    the next (a real signal to this process, a real pipe)."""
    import os
    import signal
    from multiprocessing import Pipe

    from jupyter_mlops.distributed.pool_worker import Interrupts

    ours, theirs = Pipe()
    previous = signal.getsignal(signal.SIGINT)
    interrupts = Interrupts(ours)
    try:
        interrupts.ignore_between_cells()
        os.kill(os.getpid(), signal.SIGINT)  # between cells, nothing sent: ignored
        interrupts.raise_if_pending()
        theirs.send(("cell", {}))
        os.kill(os.getpid(), signal.SIGINT)  # the cell is in the pipe: kept for it
        ours.recv()
        with pytest.raises(KeyboardInterrupt):
            interrupts.raise_if_pending()
        interrupts.ignore_between_cells()
        interrupts.starting = True  # received, not yet started
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            interrupts.raise_if_pending()
        interrupts.ignore_between_cells()
        interrupts.raise_if_pending()  # the next cell runs
    finally:
        signal.signal(signal.SIGINT, previous)
        ours.close()
        theirs.close()
