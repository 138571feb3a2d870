"""Errors of distributed cells: the rank that caused a failure, shown without noise.

A job's ranks fail together: one rank raises (or dies), and the others then fail inside a
collective because their peer is gone. The root cause is the rank that died without reporting
a Python error, else the earliest rank that reported one; the others are folded below it.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import MLOpsError
from .job import Job

# What torchrun's agent sends the ranks still running once one rank failed: not a cause.
STOPPED_BY_AGENT = -signal.SIGTERM
SOURCE_LOCATION = re.compile(r"\[[^\]\s]+\.(?:cc|cpp|cu|h|hpp):\d+\]\s*")
GLOO_ADVICE = re.compile(r"\s*This is typically caused by a remote worker[^\n]*")
CPP_STACK_LINE = re.compile(r"^(?:Exception raised from .*|frame #\d+: .*)$")
# A line gloo or c10d printed itself names its C++ file and line: "[W1130 12:00:01 pair.cc:553]".
NATIVE_LOG_LINE = re.compile(r"\S+\.(?:cc|cpp|cu|h|hpp):\d+\]")


def clean_message(text: str) -> str:
    """An error message without the C++ source locations, stack and advice gloo adds."""
    text = GLOO_ADVICE.sub("", SOURCE_LOCATION.sub("", text))
    return "\n".join(line for line in text.splitlines() if not CPP_STACK_LINE.match(line)).strip()


def is_native_noise(line: str) -> bool:
    """A line printed by gloo/c10d's C++ code, not by the cell: kept in the log file only.

    A peer that leaves early makes a rank's gloo print its connection errors (file, line and
    advice) before Python sees them; the error the cell raises already says what happened.
    """
    return bool(NATIVE_LOG_LINE.search(line) or CPP_STACK_LINE.match(line.strip()))


@dataclass(frozen=True)
class RankFailure:
    rank: int
    timestamp: float
    error_type: str
    message: str
    traceback: str

    @property
    def summary(self) -> str:
        return ": ".join(part for part in (self.error_type, self.message) if part)


@dataclass(frozen=True)
class RankExit:
    """How a rank's process ended, as torchrun's agent saw it (its exit code, or -signal)."""

    rank: int
    exitcode: int

    @property
    def summary(self) -> str:
        if self.exitcode < 0:
            try:
                name = signal.Signals(-self.exitcode).name
            except ValueError:
                name = "unknown"
            return f"was killed by signal {-self.exitcode} ({name})"
        return f"exited with code {self.exitcode}"


class DistributedCellError(MLOpsError):
    """A rank of a ``%%distributed`` cell failed.

    ``rank`` is the failing rank that caused it (its traceback shows the cell's own line
    numbers); the other ranks' failures, usually consequences such as a peer closing a
    connection, are folded below it and kept in full in the job folder.
    """

    def __init__(
        self,
        message: str,
        *,
        job_id: str,
        rank: int | None = None,
        traceback: str = "",
        others: tuple[RankFailure, ...] = (),
    ) -> None:
        self.job_id = job_id
        self.rank = rank
        self.remote_traceback = traceback
        self.others = others
        super().__init__(message)

    def __str__(self) -> str:
        return "\n".join(self._lines())

    def _lines(self) -> list[str]:
        lines = [self.args[0]]
        if self.remote_traceback:
            lines += ["", *self.remote_traceback.rstrip().splitlines()]
        if self.others:
            lines += ["", f"Other ranks ({len(self.others)}, full tracebacks in errors/):"]
            lines += [f"  rank {f.rank}: {f.summary.splitlines()[0]}" for f in self.others]
        return lines

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of the kernel-side frames, which only say 'we waited'."""
        return [f"{type(self).__name__}: {self._lines()[0]}", *self._lines()[1:]]


class DistributedTimeout(DistributedCellError):
    """The job ran past ``--timeout``; every rank was stopped."""


class DistributedCancelled(KeyboardInterrupt):
    """Ctrl-C stopped a ``%%distributed`` cell and its ranks.

    Still a ``KeyboardInterrupt``, so a notebook run stops here as after any interrupt; shown as
    one line, since the kernel-side frames only say where the cell was waiting.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}"]


def log_tail(path: Path, lines: int = 10) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []


def rank_error(
    job: Job,
    kind: str,
    failures: Sequence[RankFailure],
    exits: Sequence[RankExit],
    note: str = "",
) -> DistributedCellError | None:
    """The error naming the root cause among the ranks' reports and exits (None: no failure).

    A rank that ended without reporting a Python error (``os._exit``, a segfault, the OOM
    killer) comes first: the errors the others reported are what its disappearance caused.
    """
    world_size, where = job.spec.world_size, f"{kind} {job.id}"
    reported = {f.rank for f in failures}
    died = sorted(
        (e for e in exits if e.rank not in reported and e.exitcode not in (0, STOPPED_BY_AGENT)),
        key=lambda e: e.rank,
    )
    ordered = sorted(failures, key=lambda f: (f.timestamp, f.rank))
    if died:
        root, *others_died = died
        log = job.logs_dir / f"rank-{root.rank}.log"
        tail = log_tail(log)
        return DistributedCellError(
            f"rank {root.rank} of {world_size} {root.summary} without raising a Python error "
            f"({where}){note}",
            job_id=job.id,
            rank=root.rank,
            traceback="\n".join([f"last lines of rank {root.rank} ({log}):", *tail])
            if tail
            else "",
            others=(*(RankFailure(e.rank, 0.0, "", e.summary, "") for e in others_died), *ordered),
        )
    if ordered:
        root_failure, *others = ordered
        return DistributedCellError(
            f"rank {root_failure.rank} of {world_size} failed: "
            f"{root_failure.summary.splitlines()[0]} ({where}){note}",
            job_id=job.id,
            rank=root_failure.rank,
            traceback=root_failure.traceback,
            others=tuple(others),
        )
    return None


def restart_message(job: Job, entry: dict[str, object]) -> str:
    """One line on a restart torchrun made: which rank brought the attempt down, and how."""
    import json

    attempt = int(str(entry["attempt"]))
    folder = job.errors_dir / f"attempt-{attempt}"
    failures = [RankFailure(**json.loads(p.read_text())) for p in folder.glob("rank-*.json")]
    exits_seen = entry.get("exits")
    exits = [
        RankExit(int(rank), int(code))
        for rank, code in (exits_seen.items() if isinstance(exits_seen, dict) else ())
    ]
    error = rank_error(job, f"attempt {attempt} of job", failures, exits)
    why = error.args[0] if error is not None else "the worker group became unhealthy"
    left = int(str(entry.get("restarts_left", 0)))
    return (
        f"restart {attempt + 1} of {int(str(entry.get('max_restarts', attempt + 1)))}: {why}; "
        f"every rank starts the cell again ({left} restart(s) left)"
    )
