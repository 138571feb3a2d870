"""Data drift with Evidently's verdicts from a vectorised engine (``%drift``)."""

from __future__ import annotations

from .engine import ENGINES, DriftOptions, compute_drift, register_engine
from .result import ColumnDrift, DriftResult

__all__ = [
    "ENGINES",
    "ColumnDrift",
    "DriftOptions",
    "DriftResult",
    "compute_drift",
    "register_engine",
]
