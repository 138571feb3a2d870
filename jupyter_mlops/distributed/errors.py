"""Errors of distributed cells: a failing rank's traceback, re-raised in the notebook."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MLOpsError


@dataclass(frozen=True)
class RankFailure:
    rank: int
    timestamp: float
    error_type: str
    message: str
    traceback: str

    @property
    def summary(self) -> str:
        return f"{self.error_type}: {self.message}" if self.message else self.error_type


class DistributedCellError(MLOpsError):
    """A rank of a ``%%distributed`` cell failed.

    ``rank`` is the earliest failing rank (its traceback shows the cell's own line numbers);
    the other ranks' failures, usually consequences such as a peer closing a connection, are
    folded below it and kept in full in the job folder.
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
