"""``MonitorResult``: per-window monitoring of one model, as plain data with a text form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ..drift.result import DriftResult
    from ..registry.results import GateResult

TEXT_COLUMNS = (
    "requests",
    "share_drifted",
    "prediction_drift",
    "missing_share",
    "out_of_range_share",
    "unseen_share",
)


@dataclass(frozen=True)
class RetrainResult:
    """One ``--retrain`` execution: the notebook run by papermill in a child process."""

    notebook: str
    output: str  # the executed notebook
    returncode: int
    parameters: dict[str, Any]
    error: str = ""  # the last line papermill printed on failure

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0

    def __repr__(self) -> str:
        outcome = "succeeded" if self.succeeded else f"FAILED ({self.error or self.returncode})"
        return f"retrain {self.notebook}: {outcome}; executed notebook: {self.output}"


@dataclass
class MonitorResult:
    """``.windows`` (one row per window), ``.reference`` (the REF compared against),
    ``.passed`` (the ``--fail-on`` gate, True without one)."""

    model: str  # NAME@ALIAS as asked
    version: int | None  # the version the alias pointed to
    reference: str  # the snapshot REF(s) or label compared against
    reference_source: str  # how it was found: lineage of the version, or --reference
    current: str  # what was monitored: the inference log, or the data given
    window: str
    windows: pd.DataFrame
    inputs: tuple[str, ...]
    predictions: tuple[str, ...]
    task: str | None = None
    reports: dict[Any, DriftResult] = field(default_factory=dict, repr=False)
    notes: tuple[str, ...] = ()
    gate: GateResult | None = None
    retrain: RetrainResult | None = None
    run_id: str | None = None
    links: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.gate is None or self.gate.passed

    @property
    def drifted_windows(self) -> list[Any]:
        flags = self.windows["drifted"]
        return [
            w for w, d in zip(self.windows["window"], flags, strict=True) if d is True or d == 1
        ]

    def headline(self) -> str:
        counted = self.windows[self.windows["requests"] > 0]
        drifted = len(self.drifted_windows)
        text = (
            f"{self.model} (v{self.version}): {int(counted['requests'].sum()):,} requests "
            f"({int(counted['rows'].sum()):,} rows) in "
            f"{len(self.windows)} windows of {self.window}; feature drift in {drifted} of "
            f"{len(counted)} windows with requests"
        )
        if self.gate is not None:
            text += f"; gate {'PASSED' if self.gate.passed else 'FAILED'}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (what ``GET monitor`` returns and the run keeps)."""
        rows = []
        for record in self.windows.to_dict("records"):
            rows.append({str(k): _json_value(v) for k, v in record.items()})
        return {
            "model": self.model,
            "version": self.version,
            "reference": self.reference,
            "reference_source": self.reference_source,
            "current": self.current,
            "window": self.window,
            "inputs": list(self.inputs),
            "predictions": list(self.predictions),
            "task": self.task,
            "passed": self.passed,
            "headline": self.headline(),
            "windows": rows,
            "drifted_windows": [_json_value(w) for w in self.drifted_windows],
            "notes": list(self.notes),
            "gate": self.gate.record() if self.gate is not None else None,
            "retrain": (
                {
                    "notebook": self.retrain.notebook,
                    "output": self.retrain.output,
                    "returncode": self.retrain.returncode,
                    "parameters": self.retrain.parameters,
                    "error": self.retrain.error,
                }
                if self.retrain is not None
                else None
            ),
            "run_id": self.run_id,
        }

    def __repr__(self) -> str:
        lines = [
            f"MonitorResult: {self.headline()}",
            f"reference: {self.reference} ({self.reference_source}); current: {self.current}",
        ]
        shown = ["window", *TEXT_COLUMNS]
        extra = [
            c for c in self.windows.columns if c in ("accuracy", "mae") or c.startswith("outcome.")
        ]
        shown += extra
        table = [shown]
        for record in self.windows.to_dict("records"):
            table.append([_cell(record[c]) for c in shown])
        widths = [max(len(row[i]) for row in table) for i in range(len(shown))]
        for row in table:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines.extend(f"note: {note}" for note in self.notes)
        if self.gate is not None:
            lines.append(f"gate: {self.gate.headline()}")
            lines.extend(self.gate.table_lines())
        if self.retrain is not None:
            lines.append(repr(self.retrain))
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if hasattr(value, "strftime"):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def _json_value(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
