"""How a failed gate surfaces: an exception that shows its table, or a warning."""

from __future__ import annotations

from ..errors import GateFailed
from .results import GateResult


class GateRejected(GateFailed):
    """A promotion gate or ``%gate`` failed; ``.result`` holds every check.

    In a notebook IPython calls ``_render_traceback_`` instead of printing a traceback, so the
    cell shows the gate table; the cell still fails, so nbconvert and papermill exit non-zero.
    """

    def __init__(self, result: GateResult) -> None:
        failed = "; ".join(
            f"{r.name} (value {r.value_text()}, need {r.threshold})" for r in result.failures
        )
        super().__init__(f"{result.headline()}: {failed}")
        self.result = result

    def _render_traceback_(self) -> list[str]:
        lines = [f"GateFailed: {self.result.headline()}", *self.result.table_lines()]
        lines += [f"  report: {path}" for path in self.result.reports]
        return lines


class GateWarning(UserWarning):
    """A gate failed while ``--warn-only`` or ``gate_mode=warn`` was in effect."""
