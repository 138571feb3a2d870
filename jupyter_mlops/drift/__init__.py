"""Data drift with Evidently's verdicts from a vectorised engine (``%drift``)."""

from __future__ import annotations

from .engine import ENGINES, ColumnTests, compute_drift, register_engine
from .result import ColumnDrift, DriftResult

__all__ = [
    "ENGINES",
    "ColumnDrift",
    "ColumnTests",
    "DriftResult",
    "compute_drift",
    "register_engine",
]
