"""Errors of the snapshot store."""

from __future__ import annotations

from ..errors import MLOpsError, MLOpsNotFound


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


class SnapshotRemoved(MLOpsNotFound):
    """The version asked for was removed (``%snapshot rm`` or ``gc --keep-last``)."""

    def __init__(self, ref: str, by: str, at: str, *, last: bool = False) -> None:
        self.ref, self.by, self.at = ref, by, at
        name = ref.partition("@")[0]
        what = (
            f"every version of {name} was removed ({ref} last, by {by} at {at})"
            if last
            else f"snapshot {ref} was removed by {by} at {at}"
        )
        super().__init__(
            f"{what}; its number is never reused: load a version that remains "
            f"(%snapshot list {name})"
        )
