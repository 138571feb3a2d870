"""The drift report as HTML: a summary line, a table by severity and small inline SVG plots.

The same HTML is the notebook's rich output and the standalone page written by ``--save`` and
logged to the run, so it lives with drift (``display`` only registers it with IPython).

Static SVG instead of plotly: no script at all, so the report renders the same in JupyterLab,
VS Code, GitHub and nbconvert's HTML (also untrusted and offline), and stays a few KB per column.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .result import ColumnDrift, Distribution, DriftResult

PLOT_WIDTH, PLOT_HEIGHT = 160, 36
REFERENCE_COLOUR, CURRENT_COLOUR = "#8c959f", "#cf222e"
MAX_PLOTS = 100  # beyond this many columns, the least drifted ones show no plot
OK_COLOUR, FAIL_COLOUR = "#1a7f37", "#cf222e"  # the badges of every jupyter-mlops output
CELL = '<td style="text-align:left;padding:2px 8px">'


def drift_html(result: DriftResult) -> str:
    ordered = result.by_severity()
    rows = [
        (
            flag(r.drifted),
            plot_svg(r.distribution) if r.distribution and i < MAX_PLOTS else "",
            escape(r.column),
            escape(r.kind),
            escape(r.test),
            f"{r.statistic:.4g}",
            drift_condition(r),
        )
        for i, r in enumerate(ordered)
    ]
    verdict = flag(result.drifted)
    if result.broken:  # a failure of the data: never under a green "ok"
        verdict = label_badge("broken", "fail") + (f" {verdict}" if result.drifted else "")
    sides = (
        f"reference <b>{escape(result.reference.label)}</b> ({result.reference.rows:,} rows) vs "
        f"current <b>{escape(result.current.label)}</b> ({result.current.rows:,} rows), "
        f"engine {escape(result.engine)}"
        + (f", sampled to {result.sample:,} rows per side" if result.sample else "")
    )
    legend = (
        f'<span style="color:{REFERENCE_COLOUR}">&#9632; reference</span> '
        f'<span style="color:{CURRENT_COLOUR}">&#9472; current</span>'
    )
    notes = "".join(
        f'<div style="color:var(--jp-error-color1,{FAIL_COLOUR});font-weight:600">'
        f"broken: {escape(column)} ({escape(why)})</div>"
        for column, why in result.broken
    )
    notes += "".join(
        f"<div>not tested: {escape(column)} ({escape(why)})</div>" for column, why in result.skipped
    )
    notes += "".join(
        f"<div>{escape(what)}: {escape(where)}</div>" for what, where in result.links.items()
    )
    return (
        '<div class="jupyter-mlops-output jupyter-mlops-drift">'
        f'<div style="font-weight:600;margin-bottom:2px">{verdict} Data drift: '
        f"{escape(result.summary())}</div>"
        f'<div style="margin-bottom:4px;font-size:90%">{sides}. {legend}</div>'
        + _table(rows)
        + (f'<div style="font-size:90%;margin-top:4px">{notes}</div>' if notes else "")
        + "</div>"
    )


def flag(drifted: bool) -> str:
    return label_badge("drift", "fail") if drifted else label_badge("ok", "ok")


def label_badge(text: str, level: str) -> str:
    colour = FAIL_COLOUR if level == "fail" else OK_COLOUR
    return (
        f'<span style="color:#fff;background:{colour};border-radius:3px;'
        f'padding:0 5px;font-size:85%">{escape(text)}</span>'
    )


def _table(rows: Sequence[Sequence[str]]) -> str:
    """The columns table; the first two cells of a row (badge, plot) are our own HTML."""
    header = ("", "distribution", "column", "kind", "test", "statistic", "drift when")
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{h}</th>' for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"{CELL}{c if i < 2 else escape(c)}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return (
        '<table style="border-collapse:collapse;font-size:var(--jp-ui-font-size1,13px)">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def drift_condition(column: ColumnDrift) -> str:
    """When the column counts as drifted: "p <= 0.05" (K-S), "p < 0.05", or ">= 0.1"."""
    if column.is_p_value:
        return f"p {'<=' if column.test == 'ks' else '<'} {column.threshold:g}"
    return f">= {column.threshold:g}"


def drift_document(result: DriftResult) -> str:
    """A standalone HTML page of the report, for ``--save`` and the run's artifact."""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>Data drift: {escape(result.reference.label)} vs "
        f"{escape(result.current.label)}</title>"
        '</head><body style="font-family:system-ui,sans-serif;font-size:13px">'
        f"{drift_html(result)}</body></html>\n"
    )


def plot_svg(distribution: Distribution) -> str:
    """Reference as grey bars, current as a red step line, on one shared scale."""
    bins = len(distribution.reference)
    if bins == 0:
        return ""
    top = max(*distribution.reference, *distribution.current) or 1.0
    step = PLOT_WIDTH / bins

    def y(share: float) -> float:
        return round(PLOT_HEIGHT - share / top * (PLOT_HEIGHT - 2), 1)

    bars = "".join(
        f"M{i * step:.1f} {PLOT_HEIGHT}V{y(v)}h{step * (0.9 if distribution.labels else 1):.1f}"
        f"V{PLOT_HEIGHT}z"
        for i, v in enumerate(distribution.reference)
        if v > 0
    )
    line = (
        f"M0 {y(distribution.current[0])}"
        + "".join(f"h{step:.1f}V{y(v)}" for v in distribution.current[1:])
        + f"h{step:.1f}"
    )
    title = _plot_title(distribution)
    return (
        f'<svg width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" '
        f'viewBox="0 0 {PLOT_WIDTH} {PLOT_HEIGHT}" role="img">'
        f"<title>{escape(title)}</title>"
        f'<path d="{bars}" fill="{REFERENCE_COLOUR}" fill-opacity="0.55"/>'
        f'<path d="{line}" fill="none" stroke="{CURRENT_COLOUR}" stroke-width="1.2"/></svg>'
    )


def _plot_title(distribution: Distribution) -> str:
    if distribution.labels:
        parts = [
            f"{label}: {ref:.1%} -> {cur:.1%}"
            for label, ref, cur in zip(
                distribution.labels, distribution.reference, distribution.current, strict=True
            )
        ]
        return "; ".join(parts)
    return f"range {distribution.edges[0]:.4g} .. {distribution.edges[-1]:.4g}"
