"""The monitoring report as HTML: a headline, small time-series charts and the windows table.

Inline SVG, no script (as the drift report): it renders the same in JupyterLab, VS Code, GitHub
and nbconvert's HTML, untrusted and offline.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING, Any

from ..drift.report_html import FAIL_COLOUR, OK_COLOUR, label_badge

if TYPE_CHECKING:
    from .result import MonitorResult

WIDTH, HEIGHT, PAD = 520, 64, 4
LINE_COLOUR, GRID_COLOUR = "#0969da", "#d0d7de"
CHARTS = (
    ("requests", "requests"),
    ("share_drifted", "share of features drifted"),
    ("prediction_drift", "prediction drift (statistic)"),
    ("missing_share", "missing share"),
    ("out_of_range_share", "out-of-range share"),
    ("unseen_share", "unseen-category share"),
    ("latency_p95_ms", "latency p95 (ms)"),
    ("accuracy", "accuracy"),
    ("f1", "F1"),
    ("roc_auc", "ROC AUC"),
    ("mae", "MAE"),
    ("rmse", "RMSE"),
)
TABLE_COLUMNS = (
    "requests",
    "share_drifted",
    "drifted_columns",
    "prediction_drift",
    "missing_share",
    "out_of_range_share",
    "unseen_share",
    "type_changes",
    "latency_p95_ms",
    "labelled",
    "accuracy",
    "f1",
    "roc_auc",
    "mae",
    "rmse",
)
CELL = '<td style="text-align:left;padding:1px 6px">'


def monitor_html(result: MonitorResult) -> str:
    windows = result.windows
    flagged = [bool(d is True or d == 1) for d in windows["drifted"]]
    charts = [
        _chart(title, [_number(v) for v in windows[column]], flagged)
        for column, title in CHARTS
        if column in windows and any(_number(v) is not None for v in windows[column])
    ]
    charts += [
        _chart(f"{column} (mean)", [_number(v) for v in windows[column]], flagged)
        for column in windows.columns
        if str(column).startswith("outcome.")
    ]
    badge = ""
    if result.gate is not None:
        badge = label_badge("passed", "ok") if result.gate.passed else label_badge("failed", "fail")
    elif result.drifted_windows:
        badge = label_badge("drift", "fail")
    else:
        badge = label_badge("ok", "ok")
    notes = "".join(f"<div>{escape(n)}</div>" for n in result.notes)
    notes += "".join(f"<div>{escape(k)}: {escape(v)}</div>" for k, v in result.links.items())
    if result.gate is not None:
        for row in result.gate.rows:
            colour = OK_COLOUR if row.passed else FAIL_COLOUR
            notes += (
                f'<div style="color:{colour}">{"passed" if row.passed else "FAILED"}: '
                f"{escape(row.name)} ({escape(row.detail)})</div>"
            )
    if result.retrain is not None:
        notes += f"<div>{escape(repr(result.retrain))}</div>"
    return (
        '<div class="jupyter-mlops-output jupyter-mlops-monitor">'
        f'<div style="font-weight:600;margin-bottom:2px">{badge} Monitoring: '
        f"{escape(result.headline())}</div>"
        f'<div style="font-size:90%;margin-bottom:4px">reference <b>{escape(result.reference)}'
        f"</b> ({escape(result.reference_source)}); current {escape(result.current)}. "
        f'Windows with feature drift are marked <span style="color:{FAIL_COLOUR}">&#9679;</span>.'
        "</div>"
        f'<div style="display:flex;flex-wrap:wrap;gap:4px 16px">{"".join(charts)}</div>'
        + _table(result)
        + (f'<div style="font-size:90%;margin-top:4px">{notes}</div>' if notes else "")
        + "</div>"
    )


def monitor_document(result: MonitorResult) -> str:
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>Monitoring {escape(result.model)}</title></head>"
        '<body style="font-family:system-ui,sans-serif;font-size:13px">'
        f"{monitor_html(result)}</body></html>\n"
    )


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _chart(title: str, values: list[float | None], flagged: list[bool]) -> str:
    present = [v for v in values if v is not None]
    low, high = min(present), max(present)
    if high == low:
        low, high = low - 0.5 if low else 0.0, high + 0.5 if high else 1.0
    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)

    def x(i: int) -> float:
        return round(PAD + i * step, 1)

    def y(v: float) -> float:
        return round(HEIGHT - PAD - (v - low) / (high - low) * (HEIGHT - 2 * PAD), 1)

    path, pen = "", "M"
    for i, v in enumerate(values):
        if v is None:
            pen = "M"
            continue
        path += f"{pen}{x(i)} {y(v)}"
        pen = "L"
    dots = "".join(
        f'<circle cx="{x(i)}" cy="{y(v)}" r="2.5" '
        f'fill="{FAIL_COLOUR if flagged[i] else LINE_COLOUR}">'
        f"<title>window {i}: {v:.4g}</title></circle>"
        for i, v in enumerate(values)
        if v is not None
    )
    return (
        f'<div><div style="font-size:85%">{escape(title)} '
        f'<span style="color:#57606a">({low:.3g} .. {high:.3g})</span></div>'
        f'<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">'
        f"<title>{escape(title)}</title>"
        f'<line x1="0" y1="{HEIGHT - PAD}" x2="{WIDTH}" y2="{HEIGHT - PAD}" '
        f'stroke="{GRID_COLOUR}"/><path d="{path}" fill="none" stroke="{LINE_COLOUR}" '
        f'stroke-width="1.3"/>{dots}</svg></div>'
    )


def _table(result: MonitorResult) -> str:
    windows = result.windows
    shown = [c for c in TABLE_COLUMNS if c in windows] + [
        c for c in windows.columns if str(c).startswith("outcome.")
    ]
    head = "".join(
        f'<th style="text-align:left;padding:1px 6px">{escape(str(c))}</th>'
        for c in ("window", *shown)
    )
    body = ""
    for record in windows.to_dict("records"):
        drifted = record.get("drifted") is True or record.get("drifted") == 1
        style = f' style="color:{FAIL_COLOUR}"' if drifted else ""
        cells = [f"{record['window']:%Y-%m-%d %H:%M}", *(_cell(record[c]) for c in shown)]
        body += f"<tr{style}>" + "".join(f"{CELL}{escape(c)}</td>" for c in cells) + "</tr>"
    return (
        '<details style="margin-top:4px"><summary>windows</summary>'
        '<table style="border-collapse:collapse;font-size:var(--jp-ui-font-size1,12px)">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></details>"
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)
