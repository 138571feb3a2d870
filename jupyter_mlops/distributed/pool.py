"""The warm pool: N ranks kept alive under one torchrun agent, running cells in milliseconds.

``start`` launches the pool's agent (the ``pool`` executor) and waits until every rank has
built the process group and connected back over loopback, proving itself with a random token
before the kernel unpickles anything it sends. A cell is then one message to every rank and one
reply from each; the ranks keep their globals between cells.

What can go wrong, and what the pool does about it:

- a rank raises: ``DistributedCellError`` as for a one-shot job; if the other ranks finish
  too, the pool keeps its state. If they are still running a few seconds later (usually waiting
  in a collective for the rank that failed), the pool is restarted and says so.
- a cell runs past ``--timeout`` (default: the pool's ``--timeout``), typically a collective
  that not every rank called: ``DistributedTimeout`` names the ranks that did not finish; the
  pool is then stuck and refuses cells until ``%distributed pool restart``.
- Ctrl-C: the unfinished ranks get SIGINT; if every rank then stops the cell, the pool keeps
  its state; a rank stuck inside a collective cannot be interrupted, so then the pool restarts.
- the kernel dies: the agent and the ranks die with it (PDEATHSIG, as for one-shot jobs).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..config import Settings
from ..context import current_settings
from ..errors import MLOpsUsageError
from .errors import (
    DistributedCancelled,
    DistributedCellError,
    DistributedTimeout,
    RankExit,
    RankFailure,
    rank_error,
)
from .executors import PoolTorchrun, get_executor
from .job import CONTROL_FILE, Job, JobSpec, create_job, encode_push, loads
from .logs import LogPump
from .plan import JobRequest, plan
from .results import DistributedResult

DEFAULT_TIMEOUT_S = 300.0  # a cell (and so a collective) that takes longer is reported as hung
GROUP_TIMEOUT_MARGIN_S = 30.0  # the ranks' own collective timeout fires after ours
START_TIMEOUT_S = 180.0
PEER_GRACE_S = 5.0  # after a rank fails, how long the others get to finish the cell
INTERRUPT_GRACE_S = 8.0  # generous: a loaded 2-core CI machine delays signal handling
AGENT_EXIT_WAIT_S = 10.0  # after a rank vanished, the agent stops the others, then exits


@dataclass(frozen=True)
class PoolStatus:
    """``%distributed pool status``: whether a pool runs here, its size and how it is doing."""

    state: str  # "running", "stuck" or "stopped"
    world_size: int = 0
    backend: str = ""
    cells: int = 0
    job_id: str | None = None
    job_dir: Path | None = None
    reason: str = ""

    def __repr__(self) -> str:
        if self.state == "stopped":
            return "DistributedPool(state='stopped')"
        text = (
            f"DistributedPool(state={self.state!r}, world_size={self.world_size}, "
            f"backend={self.backend!r}, cells={self.cells})"
        )
        return f"{text}\n  {self.reason}" if self.reason else text


class Pool:
    def __init__(
        self,
        job: Job,
        agent: subprocess.Popen[bytes],
        conns: dict[int, Connection],
        pids: dict[int, int],
        cell_timeout: float,
    ) -> None:
        self.job = job
        self.cell_timeout = cell_timeout  # the process group's own timeout is later (spec)
        self.agent = agent
        self.conns = conns
        self.pids = pids
        self.cells = 0
        self.stuck = ""  # why cells are refused until a restart
        self.restart_reason = ""  # set when the cell that just ran left the pool unusable

    @property
    def spec(self) -> JobSpec:
        return self.job.spec

    # --- start and stop ------------------------------------------------------------------
    @classmethod
    def start(cls, spec: JobSpec, settings: Settings, cell_timeout: float) -> Pool:
        """Launch the ranks and wait until each has its process group and has connected."""
        token = secrets.token_bytes(16)
        listener = socket.create_server(("127.0.0.1", 0), backlog=spec.world_size)
        job = create_job(settings.home, "", spec, {})
        control = {"host": "127.0.0.1", "port": listener.getsockname()[1], "token": token.hex()}
        # Readable by this user only: the token is what keeps other local users off the socket.
        fd = os.open(job.dir / CONTROL_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as control_file:
            json.dump(control, control_file)
        agent = PoolTorchrun().launch(job)
        job.set_state("running", agent_pid=agent.pid, host=os.uname().nodename)
        pool = cls(job, agent, {}, {}, cell_timeout)
        try:
            pool._accept(listener, token)
        except BaseException:
            pool.stop()
            raise
        finally:
            listener.close()
        return pool

    def _accept(self, listener: socket.socket, token: bytes) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(self.conns) < self.spec.world_size:
            if self.agent.poll() is not None or time.monotonic() > deadline:
                what = "exited" if self.agent.poll() is not None else "did not start in time"
                log = self.job.logs_dir / "agent.log"
                tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
                raise DistributedCellError(
                    f"the pool {what}: {len(self.conns)} of {self.spec.world_size} ranks "
                    f"connected (job {self.job.id}); the agent's last lines ({log}):",
                    job_id=self.job.id,
                    traceback="\n".join(tail),
                )
            if not select.select([listener], [], [], 0.1)[0]:
                continue
            sock, _ = listener.accept()
            conn = Connection(sock.detach())
            try:
                ok = conn.poll(5) and hmac.compare_digest(conn.recv_bytes(64), token)
                hello = conn.recv() if ok and conn.poll(5) else None
            except (OSError, EOFError):
                hello = None
            if not (isinstance(hello, tuple) and hello[0] == "hello"):
                conn.close()
                continue
            _, rank, pid = hello
            self.conns[rank], self.pids[rank] = conn, pid

    def alive(self) -> bool:
        return self.agent.poll() is None

    def stop(self) -> None:
        """Ask every rank to stop; whatever is still running after a moment is killed."""
        for conn in self.conns.values():
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        with contextlib.suppress(Exception):
            self.agent.wait(timeout=3)
        get_executor("pool").cancel(self.job)
        with contextlib.suppress(Exception):
            self.agent.wait(timeout=5)
        for conn in self.conns.values():
            conn.close()
        self.job.set_state("stopped")

    def status(self) -> PoolStatus:
        return PoolStatus(
            state="stuck" if self.stuck else "running",
            world_size=self.spec.world_size,
            backend=self.spec.backend,
            cells=self.cells,
            job_id=self.job.id,
            job_dir=self.job.dir,
            reason=self.stuck,
        )

    # --- one cell ------------------------------------------------------------------------
    def run_cell(
        self,
        source: str,
        values: Mapping[str, Any],
        *,
        pull: tuple[str, ...],
        pull_explicit: bool,
        tracking: tuple[str | None, str | None],
        timeout: float | None,
        all_logs: bool,
        sink: Callable[[str], None],
    ) -> DistributedResult:
        if self.stuck:
            raise MLOpsUsageError(
                f"the pool is stuck ({self.stuck}); run %distributed pool restart, "
                "or add --fresh for a one-shot job"
            )
        started = time.monotonic()
        cell = {
            "source": source,
            "push": encode_push(values),
            "pull": pull,
            "pull_explicit": pull_explicit,
            "tracking": tracking,
        }
        for conn in self.conns.values():
            conn.send(("cell", cell))
        self.cells += 1
        pump = LogPump(self.job.logs_dir, sink, ranks=None if all_logs else (0,))
        replies: dict[int, tuple[str, Any]] = {}
        limit = timeout or self.cell_timeout
        try:
            self._collect(replies, pump, started + limit, peer_grace=True)
        except KeyboardInterrupt:
            self._interrupt(replies, pump)
        finally:
            pump.close()
        return self._outcome(replies, limit, time.monotonic() - started)

    def _collect(
        self,
        replies: dict[int, tuple[str, Any]],
        pump: LogPump,
        deadline: float,
        *,
        peer_grace: bool,
    ) -> None:
        """Read every rank's output and final reply until all replied or time is up."""
        failed_at: float | None = None
        while len(replies) < len(self.conns):
            waiting = {c.fileno(): r for r, c in self.conns.items() if r not in replies}
            ready, _, _ = select.select(list(waiting), [], [], 0.1)
            for fd in ready:
                rank = waiting[fd]
                conn = self.conns[rank]
                try:
                    while rank not in replies and conn.poll():
                        message = conn.recv()
                        if message[0] == "out":
                            pump.feed(f"[rank{rank}]:{message[1]}")
                        else:
                            replies[rank] = message
                except (EOFError, OSError):
                    replies[rank] = ("lost", None)
                if replies.get(rank, ("",))[0] in ("error", "lost") and failed_at is None:
                    failed_at = time.monotonic()
            now = time.monotonic()
            if not self.alive():
                for rank in self.conns:
                    replies.setdefault(rank, ("lost", None))
            else:
                gave_up_on_peers = peer_grace and failed_at and now > failed_at + PEER_GRACE_S
                if gave_up_on_peers or now > deadline:
                    return

    def _interrupt(self, replies: dict[int, tuple[str, Any]], pump: LogPump) -> None:
        """Ctrl-C: interrupt the unfinished ranks; restart the pool if one will not stop."""
        for rank, pid in self.pids.items():
            if rank not in replies:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: restart at once
            self._collect(replies, pump, time.monotonic() + INTERRUPT_GRACE_S, peer_grace=False)
        unfinished = sorted(set(self.conns) - set(replies))
        if unfinished or any(kind == "lost" for kind, _ in replies.values()):
            self.restart_reason = f"rank(s) {join(unfinished)} did not stop at the interrupt"
            raise DistributedCancelled(
                f"pool cell cancelled; {self.restart_reason} (stuck in a collective?), so the "
                "pool was restarted and its variables are gone"
            )
        raise DistributedCancelled(
            f"pool cell cancelled, all ranks stopped (pool {self.job.id}); the pool keeps its state"
        )

    def _exits(self) -> list[RankExit]:
        """How the ranks that vanished ended: the agent writes it once it has stopped the rest."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.agent.wait(timeout=AGENT_EXIT_WAIT_S)
        return [RankExit(rank, code) for rank, code in self.job.rank_exits().items()]

    def _outcome(
        self, replies: dict[int, tuple[str, Any]], limit: float, seconds: float
    ) -> DistributedResult:
        world = self.spec.world_size
        failures = [RankFailure(**report) for kind, report in replies.values() if kind == "error"]
        lost = sorted(r for r, (kind, _) in replies.items() if kind == "lost")
        unfinished = sorted(set(self.conns) - set(replies))
        if lost:
            self.restart_reason = f"rank(s) {join(lost)} exited during the cell"
        elif failures and unfinished:
            first = min(failures, key=lambda f: (f.timestamp, f.rank))
            self.restart_reason = (
                f"rank(s) {join(unfinished)} were still running {PEER_GRACE_S:g} s after "
                f"rank {first.rank} failed (waiting in a collective for it?)"
            )
        note = (
            f"; {self.restart_reason}, so the pool was restarted and its variables are gone"
            if self.restart_reason
            else ""
        )
        error = rank_error(self.job, "pool", failures, self._exits() if lost else [], note)
        if error is not None:
            raise error
        if lost:
            raise DistributedCellError(
                f"{self.restart_reason}, so the pool was restarted and its variables are gone; "
                f"see {self.job.logs_dir / 'agent.log'}",
                job_id=self.job.id,
            )
        if unfinished:
            finished = sorted(replies)
            self.stuck = f"rank(s) {join(unfinished)} did not finish a cell within {limit:g} s" + (
                f" while rank(s) {join(finished)} did" if finished else ""
            )
            raise DistributedTimeout(
                f"pool cell ran past --timeout {limit:g} s: {self.stuck}; usually a collective "
                "that not every rank called. Run %distributed pool restart",
                job_id=self.job.id,
            )
        values = loads(replies[0][1]) if replies[0][1] is not None else {}
        return DistributedResult(
            job_id=self.job.id,
            state="ok",
            world_size=world,
            nnodes=1,
            backend=self.spec.backend,
            executor="pool",
            job_dir=self.job.dir,
            values=values,
            seconds=seconds,
        )


def join(ranks: Sequence[int]) -> str:
    return ",".join(map(str, ranks))


_pool: list[Pool] = []  # at most one pool per kernel


def running() -> Pool | None:
    """The kernel's pool, if it is up (one stopped from outside, e.g. by cancel, is dropped)."""
    if _pool and not _pool[0].alive():
        _pool.pop().job.set_state("stopped")
    return _pool[0] if _pool else None


def start(
    n: int | None = None,
    *,
    backend: str = "auto",
    gpus: str | Sequence[int] | None = None,
    timeout: float | None = None,
    settings: Settings | None = None,
) -> PoolStatus:
    """Start the pool (``%distributed pool start``); ``timeout`` bounds every cell."""
    if running() is not None:
        raise MLOpsUsageError(
            "a pool is already running; %distributed pool restart replaces it, "
            "%distributed pool stop ends it"
        )
    spec = plan(JobRequest(n=n, gpus=gpus, backend=backend, timeout=timeout))
    cell_timeout = timeout or DEFAULT_TIMEOUT_S
    spec = replace(spec, executor="pool", timeout=cell_timeout + GROUP_TIMEOUT_MARGIN_S)
    _pool.append(Pool.start(spec, settings or current_settings(), cell_timeout))
    return _pool[0].status()


def stop() -> PoolStatus:
    """Stop the pool's ranks and agent (``%distributed pool stop``); a no-op without a pool."""
    if _pool:
        _pool.pop().stop()
    return PoolStatus("stopped")


def restart(settings: Settings | None = None) -> PoolStatus:
    """A fresh pool of the same shape: after a hang, or to drop every rank's variables."""
    pool = _pool[0] if _pool else None
    if pool is None:
        raise MLOpsUsageError("no pool to restart; start one with %distributed pool start -n N")
    stop()
    _pool.append(Pool.start(pool.spec, settings or current_settings(), pool.cell_timeout))
    return _pool[0].status()


def status() -> PoolStatus:
    pool = running()
    return pool.status() if pool is not None else PoolStatus("stopped")


def run_in_pool(
    pool: Pool,
    source: str,
    values: Mapping[str, Any],
    *,
    pull: tuple[str, ...],
    pull_explicit: bool,
    tracking: tuple[str | None, str | None],
    timeout: float | None,
    all_logs: bool,
    sink: Callable[[str], None],
) -> DistributedResult:
    """One cell in the pool; restarts the pool when the cell left it unusable."""
    try:
        return pool.run_cell(
            source,
            values,
            pull=pull,
            pull_explicit=pull_explicit,
            tracking=tracking,
            timeout=timeout,
            all_logs=all_logs,
            sink=sink,
        )
    finally:
        if pool.restart_reason:
            sink(f"[jupyter-mlops] restarting the pool: {pool.restart_reason}")
            restart()
