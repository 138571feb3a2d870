"""The notebook's rich form of ``DriftResult``: the report HTML, which drift itself builds."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..drift.result import DriftResult


def drift_html(result: DriftResult) -> str:
    from ..drift.report_html import drift_html as report

    return report(result)
