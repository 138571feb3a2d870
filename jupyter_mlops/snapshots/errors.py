"""Errors of the snapshot store."""

from __future__ import annotations

from ..errors import MLOpsError


class SnapshotCorrupted(MLOpsError):
    """Stored snapshot data does not match its content id: the store copy is damaged."""

    def __init__(self, snapshot: str, obj: str, problem: str) -> None:
        self.snapshot = snapshot
        self.object = obj
        self.problem = problem
        super().__init__(
            f"snapshot {snapshot}: {obj} is corrupted ({problem}); the stored copy is damaged, "
            "so restore the store from a backup or snapshot the data again "
            "(%snapshot verify lists every damaged object)"
        )
