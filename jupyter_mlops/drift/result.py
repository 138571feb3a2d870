"""``DriftResult``: the verdicts of one drift comparison, as plain data with a text form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

COLUMN_FIELDS = ("column", "kind", "test", "statistic", "threshold", "drifted")


@dataclass(frozen=True)
class Distribution:
    """A small picture of both sides: shares per bin (``edges``) or per value (``labels``)."""

    reference: tuple[float, ...]
    current: tuple[float, ...]
    edges: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str
    test: str
    statistic: float
    threshold: float
    drifted: bool
    is_p_value: bool
    distribution: Distribution | None = None

    @property
    def severity(self) -> float:
        """How far past (> 1) or short of (< 1) its threshold the column is, for sorting."""
        if self.is_p_value:
            return self.threshold / max(self.statistic, 1e-300)
        return self.statistic / self.threshold if self.threshold else math.inf

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMN_FIELDS}


@dataclass(frozen=True)
class DataSide:
    label: str
    rows: int


@dataclass(frozen=True)
class DriftResult:
    """Per-column verdicts and the dataset verdict (drifted share >= ``drift_share``).

    ``broken`` columns (all values missing on a side, or a changed type) are a failure of the data
    rather than drift: they are not tested, so the drift verdicts stay Evidently's, and the
    headline says the data is broken.
    """

    results: tuple[ColumnDrift, ...]
    reference: DataSide
    current: DataSide
    drift_share: float = 0.5
    engine: str = "fast"
    skipped: tuple[tuple[str, str], ...] = ()  # (column, why it was not tested)
    broken: tuple[tuple[str, str], ...] = ()  # (column, what is wrong with its data)
    sample: int | None = None
    links: dict[str, str] = field(default_factory=dict, compare=False)  # where saved or logged

    @property
    def n_drifted(self) -> int:
        return sum(r.drifted for r in self.results)

    @property
    def n_broken(self) -> int:
        return len(self.broken)

    @property
    def share_drifted(self) -> float:
        return self.n_drifted / len(self.results) if self.results else 0.0

    @property
    def drifted(self) -> bool:
        return bool(self.results) and self.share_drifted >= self.drift_share

    @property
    def columns(self) -> pd.DataFrame:
        """One row per tested column: column, kind, test, statistic, threshold, drifted."""
        import pandas as pd

        return pd.DataFrame([r.row() for r in self.results], columns=list(COLUMN_FIELDS))

    def column(self, name: str) -> ColumnDrift:
        for result in self.results:
            if result.column == name:
                return result
        raise KeyError(name)

    def by_severity(self) -> list[ColumnDrift]:
        return sorted(self.results, key=lambda r: (not r.drifted, -r.severity, r.column))

    def summary(self) -> str:
        verdict = "DRIFT DETECTED" if self.drifted else "no dataset drift"
        drift = (
            f"{verdict}: {self.n_drifted} of {len(self.results)} columns drifted "
            f"(share {self.share_drifted:.3f}, dataset drift at >= {self.drift_share:g})"
        )
        return f"{self.broken_summary()}; {drift}" if self.broken else drift

    def broken_summary(self) -> str:
        """``DATA BROKEN: 2 columns (a, b)``, or "" when every column is sound."""
        if not self.broken:
            return ""
        plural = "column" if self.n_broken == 1 else "columns"
        return f"DATA BROKEN: {self.n_broken} {plural} ({', '.join(c for c, _ in self.broken)})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (non-finite numbers become null)."""
        return {
            "engine": self.engine,
            "drifted": self.drifted,
            "share_drifted": self.share_drifted,
            "n_drifted": self.n_drifted,
            "n_columns": len(self.results),
            "n_broken": self.n_broken,
            "drift_share": self.drift_share,
            "reference": {"label": self.reference.label, "rows": self.reference.rows},
            "current": {"label": self.current.label, "rows": self.current.rows},
            "sample": self.sample,
            "columns": [{k: _json_number(v) for k, v in r.row().items()} for r in self.results],
            "skipped": [{"column": c, "reason": why} for c, why in self.skipped],
            "broken": [{"column": c, "reason": why} for c, why in self.broken],
        }

    def __repr__(self) -> str:
        lines = [
            f"DriftResult: {self.summary()}",
            f"reference: {self.reference.label} ({self.reference.rows:,} rows)  "
            f"current: {self.current.label} ({self.current.rows:,} rows)  engine: {self.engine}"
            + (f"  sample: {self.sample:,} rows per side" if self.sample else ""),
        ]
        rows = [
            (
                r.column,
                r.kind,
                r.test,
                f"{r.statistic:.6g}",
                f"{r.threshold:g}",
                "yes" if r.drifted else "no",
            )
            for r in self.by_severity()
        ]
        header = ("column", "kind", "test", "statistic", "threshold", "drifted")
        widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
        for row in (header, *rows):
            lines.append(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )
        lines.extend(f"BROKEN: {column} ({why})" for column, why in self.broken)
        lines.extend(f"not tested: {column} ({why})" for column, why in self.skipped)
        return "\n".join(lines)


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
