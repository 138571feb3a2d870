"""HTML for ``%mlops status`` and ``%mlops doctor``."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from .html import badge, table, titled

if TYPE_CHECKING:
    from ..diagnostics import DoctorReport, Status


def status_html(status: Status) -> str:
    return titled("jupyter-mlops status", table(["setting", "value", "from"], status.rows()))


def doctor_html(report: DoctorReport) -> str:
    rows = [
        (
            badge(c.level),
            escape(c.name),
            escape(c.detail),
            escape(c.hint if c.level != "ok" else ""),
        )
        for c in report.checks
    ]
    return titled(
        f"jupyter-mlops doctor: {report.summary()}",
        table(["", "check", "result", "what to do"], rows, raw_columns=4),
    )
