"""``python -m jupyter_mlops.distributed.pool_worker JOBDIR``: one rank of the warm pool.

Started by torchrun like the one-shot worker and set up the same way (PDEATHSIG, pid file,
process group), it then connects to the kernel over loopback (address and token in
``control.json``) and serves cells until told to stop: each cell runs in one namespace kept for
the life of the pool, its output goes back over the connection line by line, and the last
message says ``done`` (with rank 0's pulled values) or ``error`` (the same report a one-shot
rank writes). Ctrl-C in the notebook reaches a rank as SIGINT, which interrupts a cell but is
ignored between cells; one that arrives while the cell is on its way to this rank (sent, not yet
started: a loaded machine delays a rank) is kept and stops that cell as it starts.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import signal
import sys
import threading
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from .job import CONTROL_FILE, Job, dumps_cpu, load_job, loads
from .procs import die_with_parent
from .rank_logging import tracked_by_rank
from .worker import (
    bind_rank,
    failure_report,
    init_group,
    pulled,
    report_rank,
    run_cell,
    run_rank,
)


class LineSender(io.TextIOBase):
    """A text stream that sends each complete line to the kernel as ``("out", line)``."""

    def __init__(self, conn: Connection, lock: threading.Lock) -> None:
        self.conn = conn
        self.lock = lock
        self.pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.send(line)
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.send(self.pending)
            self.pending = ""

    def send(self, line: str) -> None:
        with self.lock:
            self.conn.send(("out", line))


def connect(job: Job, rank: int) -> Connection:
    control = json.loads((job.dir / CONTROL_FILE).read_text())
    conn = Client((control["host"], control["port"]))
    conn.send_bytes(bytes.fromhex(control["token"]))
    conn.send(("hello", rank, os.getpid()))
    return conn


class Interrupts:
    """SIGINT between cells: ignored, unless a cell is already waiting or being started, whose
    run it then stops (the kernel interrupts only while a cell runs, so that cell is its target)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.starting = False  # a cell was received and is about to run
        self.pending = False

    def idle(self, signum: int, frame: Any) -> None:
        if self.starting or self.conn.poll():
            self.pending = True

    def ignore_between_cells(self) -> None:
        self.starting = self.pending = False
        signal.signal(signal.SIGINT, self.idle)

    def raise_if_pending(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


def run_one(
    conn: Connection,
    rank: int,
    namespace: dict[str, Any],
    cell: dict[str, Any],
    interrupts: Interrupts,
) -> tuple[str, Any]:
    lock = threading.Lock()
    out = LineSender(conn, lock)
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = out
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        interrupts.raise_if_pending()  # Ctrl-C came while this cell was on its way
        namespace.update({name: loads(data) for name, data in cell["push"].items()})
        with tracked_by_rank(rank, *cell["tracking"]):
            run_cell(cell["source"], namespace)
        values = None
        if rank == 0:
            values = dumps_cpu(pulled(cell["pull"], cell["pull_explicit"], namespace))
        return ("done", values)
    except BaseException as exc:
        return ("error", failure_report(rank, exc))
    finally:
        interrupts.ignore_between_cells()
        out.flush()
        sys.stdout, sys.stderr = saved


def serve(conn: Connection, rank: int, namespace: dict[str, Any]) -> None:
    interrupts = Interrupts(conn)
    interrupts.ignore_between_cells()
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the kernel went away without saying stop
            return
        if message[0] == "stop":
            return
        interrupts.starting = True
        conn.send(run_one(conn, rank, namespace, message[1], interrupts))


def main(job_dir: Path) -> int:
    die_with_parent()
    if os.getppid() == 1:  # the agent died before prctl took effect
        return 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ["LOCAL_RANK"])
    job = load_job(job_dir)
    report_rank(job, rank, "running")
    restart = bind_rank(job, rank)

    import torch.distributed as dist

    try:
        device = init_group(job, local_rank, int(os.environ["LOCAL_WORLD_SIZE"]))
        namespace: dict[str, Any] = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "rank": rank,
            "world_size": int(os.environ["WORLD_SIZE"]),
            "local_rank": local_rank,
            "device": device,
            "restart": restart,
        }
        with connect(job, rank) as conn:
            serve(conn, rank, namespace)
        report_rank(job, rank, "done")
    finally:
        from .stats import stop_recording

        stop_recording()
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    run_rank(main, "jupyter_mlops.distributed.pool_worker")
