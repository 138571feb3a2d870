"""What a drift comparison reads: DataFrames as given, or the DataFrame of a snapshot REF."""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..errors import MLOpsUsageError


def resolve(settings: Settings, data: Any, label: str) -> tuple[Any, str]:
    """``(frame, label)``: a snapshot REF is loaded (verified) and labelled by the REF."""
    if not isinstance(data, str):
        return data, label
    from ..snapshots import service

    loaded = service.load(settings, data)
    if hasattr(loaded, "to_pandas") and not hasattr(loaded, "columns"):
        loaded = loaded.to_pandas()
    if not hasattr(loaded, "columns"):
        raise MLOpsUsageError(f"snapshot {data!r} is a file or folder, not a DataFrame")
    return loaded, data
