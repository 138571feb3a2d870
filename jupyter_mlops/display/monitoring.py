"""The notebook's rich form of ``MonitorResult`` and the schedule listings."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..monitoring.result import MonitorResult
    from ..monitoring.schedules import ScheduleList


def monitor_html(result: MonitorResult) -> str:
    from ..monitoring.report_html import monitor_html as report

    return report(result)


def schedules_html(listing: ScheduleList) -> str:
    return f"<pre>{escape(repr(listing))}</pre>"
