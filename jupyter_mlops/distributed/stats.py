"""Per-rank memory and step time, written to ``stats/rank-N.json`` in the job folder.

Every rank samples its memory in a daemon thread (peak allocated CUDA memory on a GPU, resident
set size on CPU) and the cell marks the end of each training step with
``mlops.distributed.mark_step()``, which records the step's wall time. ``%distributed status``
reads the files while the job runs; when the job ends inside ``%%track`` the summary becomes
metrics of the run (see :mod:`.job_logging`).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import MLOpsUsageError
from .job import write_atomic

STATS_DIR = "stats"
SAMPLE_EVERY_S = 1.0
WRITE_AT_MOST_EVERY_S = 0.5


@dataclass(frozen=True)
class RankStats:
    """One rank's figures: ``memory_mb`` is peak CUDA allocated on a GPU, else peak RSS."""

    rank: int
    steps: int
    step_s_last: float | None
    step_s_mean: float | None
    memory_mb: float
    memory_kind: str  # "cuda peak allocated" or "rss peak"
    restart: int = 0

    @property
    def summary(self) -> str:
        step = (
            f"{self.steps} steps, {self.step_s_mean * 1000:.1f} ms/step"
            if self.step_s_mean is not None
            else "no steps marked"
        )
        return f"rank {self.rank}: {step}, {self.memory_kind} {self.memory_mb:.0f} MB"


def memory() -> tuple[float, str]:
    """Peak CUDA allocation once the cell used CUDA, else peak RSS (torch is never imported)."""
    cuda = sys.modules.get("torch.cuda")
    try:
        if cuda is not None and cuda.is_initialized():
            return cuda.max_memory_allocated() / 2**20, "cuda peak allocated"
    except AttributeError:  # torch is still being imported by the cell (sampler thread)
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss peak"


class Recorder:
    """This rank's step times and memory, written now and then; one per worker process."""

    def __init__(self, job_dir: Path, rank: int, restart: int) -> None:
        self.path = job_dir / STATS_DIR / f"rank-{rank}.json"
        self.path.parent.mkdir(exist_ok=True)
        self.rank, self.restart = rank, restart
        self.lock = threading.Lock()
        self.steps, self.total = 0, 0.0
        self.last: float | None = None
        self.marked = time.perf_counter()
        self.written = 0.0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.sample, name="mlops-rank-stats", daemon=True)

    def start(self) -> Recorder:
        self.write()
        self.thread.start()
        return self

    def mark(self) -> float:
        now = time.perf_counter()
        with self.lock:
            seconds = now - self.marked
            self.last, self.marked = seconds, now
            self.steps += 1
            if self.steps > 1:  # the first step also paid for the set-up: not in the mean
                self.total += seconds
        if time.monotonic() - self.written >= WRITE_AT_MOST_EVERY_S:
            self.write()
        return seconds

    def snapshot(self) -> RankStats:
        used, kind = memory()
        with self.lock:
            mean = self.total / (self.steps - 1) if self.steps > 1 else self.last
            return RankStats(self.rank, self.steps, self.last, mean, used, kind, self.restart)

    def write(self) -> None:
        self.written = time.monotonic()
        write_atomic(self.path, json.dumps(asdict(self.snapshot())).encode())

    def sample(self) -> None:
        while not self.stopped.wait(SAMPLE_EVERY_S):
            try:
                self.write()
            except Exception:  # figures are best effort: never disturb the cell
                continue

    def stop(self) -> None:
        self.stopped.set()
        self.write()


_recorder: list[Recorder] = []


def start_recording(job_dir: Path, rank: int) -> Recorder:
    recorder = Recorder(job_dir, rank, int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")))
    _recorder[:] = [recorder.start()]
    return recorder


def stop_recording() -> None:
    if _recorder:
        _recorder.pop().stop()


def mark_step() -> float:
    """Inside a ``%%distributed`` cell: the end of one training step; its seconds.

    The first call measures from the moment the rank started, so the mean leaves that step
    out once there are others. ``%distributed status`` shows each rank's mean step time and
    memory; inside ``%%track`` they become run metrics.
    """
    if not _recorder:
        raise MLOpsUsageError("mark_step() runs inside a %%distributed cell")
    return _recorder[-1].mark()


def read_stats(job_dir: Path) -> list[RankStats]:
    """Every rank's latest figures (a file being replaced is skipped, not an error)."""
    found = []
    for path in sorted((job_dir / STATS_DIR).glob("rank-*.json")):
        try:
            fields: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        found.append(RankStats(**fields))
    return sorted(found, key=lambda s: s.rank)
