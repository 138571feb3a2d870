"""Which data a model is monitored against: the snapshot(s) its version was trained on.

``%register`` tagged the version with its run's input snapshots (``mlops.snapshots`` and their
content ids); those that hold the logged input columns are the reference, loaded and verified by
content id. ``--reference REF`` (or a DataFrame) overrides it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import records
from ..config import Settings
from ..drift import inputs
from ..errors import MLOpsUsageError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Reference:
    frame: pd.DataFrame
    label: str  # the REF(s) loaded, or the label of a DataFrame given
    source: str  # how it was chosen, for the report


def given(settings: Settings, data: Any, label: str) -> Reference:
    frame, label = inputs.resolve(settings, data, label)
    return Reference(frame, label, "given with --reference")


def from_lineage(settings: Settings, version: Any, logged: Sequence[str]) -> Reference:
    """The version's training snapshots that share the most columns with the logged inputs."""
    import pandas as pd

    refs, _ = records.tag_snapshots(version)
    where = f"{version.name}/{version.version}"
    if not refs:
        raise MLOpsUsageError(
            f"{where} records no training snapshot (its run saved or loaded none inside "
            "%%track); pass --reference REF"
        )
    loaded = []
    for ref in refs:  # pinned REFs (NAME@vN), re-hashed on load
        frame, _ = inputs.resolve(settings, ref, ref)
        if hasattr(frame, "columns"):
            loaded.append((ref, frame))
    overlap = {ref: len(set(frame.columns) & set(logged)) for ref, frame in loaded}
    best = max(overlap.values(), default=0)
    if best == 0:
        raise MLOpsUsageError(
            f"none of {where}'s training snapshots ({', '.join(refs)}) has the logged input "
            "columns; pass --reference REF"
        )
    chosen = [(ref, frame) for ref, frame in loaded if overlap[ref] == best]
    frame = (
        pd.concat([f for _, f in chosen], ignore_index=True) if len(chosen) > 1 else chosen[0][1]
    )
    label = " + ".join(ref for ref, _ in chosen)
    return Reference(frame, label, f"found through lineage: the training data of {where}")
