"""HTML of tracked runs: the live/final run summary, the runs table and run comparisons.

The run chart and the comparison curves are inline SVG (cheap enough to redraw a few times a
second, no JavaScript, so they survive nbconvert, untrusted notebooks and dark themes, and a
comparison stays tens of KB instead of carrying plotly.js).
"""

from __future__ import annotations

import math
import sys
import time
from html import escape
from typing import TYPE_CHECKING, Any

from ..tracking.colours import PALETTE
from .html import badge, table, titled

if TYPE_CHECKING:
    from ..tracking.compare import Comparison
    from ..tracking.logger import MetricSeries
    from ..tracking.run import RunSummary, TrackedRun

LIVE_INTERVAL_S = 0.4
STATUS_LEVEL = {"FINISHED": "ok", "RUNNING": "warn", "FAILED": "fail", "KILLED": "fail"}
DIFF_STYLE = "background:rgba(255,196,0,.25)"


def _shell() -> Any:
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


class RunView:
    """Shows a run under its cell: redrawn while it runs (interactively), once at the end."""

    def __init__(self, run: TrackedRun, live: bool) -> None:
        self.run = run
        self.live = live
        self.handle: Any = None
        self.due = time.monotonic() + LIVE_INTERVAL_S

    def tick(self) -> None:
        now = time.monotonic()
        if now < self.due:
            return
        self.due = now + LIVE_INTERVAL_S
        try:
            self.show(self.run.summary())
        except Exception:  # a failed redraw must never stop training
            self.live = False
            self.run.set_live_view(None)

    def show(self, summary: RunSummary) -> None:
        from IPython.display import display

        if self.handle is None:
            self.handle = display(summary, display_id=True)
        else:
            self.handle.update(summary)

    def finish(self, summary: RunSummary) -> None:
        try:
            self.show(summary)
        except Exception as exc:  # the run is already stored; say so rather than fail the cell
            print(f"jupyter-mlops: could not display run {summary.run_id}: {exc}", file=sys.stderr)


def attach_view(run: TrackedRun) -> None:
    """Under IPython, show the run: live interactively, a static summary at the end in batch."""
    if _shell() is None:
        return
    from ..tracking.run import is_interactive

    view = RunView(run, live=is_interactive())
    if view.live:
        run.set_live_view(view.tick)
    run.on_end = view.finish


def sparkline(series: MetricSeries, colour: str, width: int = 240, height: int = 90) -> str:
    steps, values = series.points()
    finite = [(s, v) for s, v in zip(steps, values, strict=True) if math.isfinite(v)]
    if not finite:
        return ""
    lo, hi = min(v for _, v in finite), max(v for _, v in finite)
    first, last = finite[0][0], finite[-1][0]
    span_x, span_y = (last - first) or 1, (hi - lo) or 1.0
    pad = 4
    points = " ".join(
        f"{pad + (s - first) / span_x * (width - 2 * pad):.1f},"
        f"{height - pad - (v - lo) / span_y * (height - 2 * pad):.1f}"
        for s, v in finite
    )
    return (
        f'<svg width="{width}" height="{height + 14}" xmlns="http://www.w3.org/2000/svg" '
        'style="margin-right:12px">'
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="none" stroke="#d0d7de"/>'
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'
        f'<text x="2" y="{height + 12}" font-size="10" fill="#57606a">'
        f"{escape(series_label(series))}</text></svg>"
    )


def series_label(series: MetricSeries) -> str:
    return f"steps {series.steps[0] if series.steps else 0}-{series.last_step}"


def summary_html(summary: RunSummary) -> str:
    level = STATUS_LEVEL.get(summary.status, "warn")
    head = (
        f"{badge(level)} <b>{escape(summary.status)}</b> · run <code>{escape(summary.name)}</code>"
        f" · <code>{escape(summary.run_id)}</code> · experiment "
        f"<code>{escape(summary.experiment)}</code> · {summary.duration_s:.1f} s"
    )
    if summary.policy == "replace" and summary.replaced:
        head += f" · replaces <code>{escape(summary.replaced[:12])}</code>"
    parts = [f"<div>{head}</div>"]
    if summary.error:
        parts.append(f'<pre style="color:#cf222e;margin:4px 0">{escape(summary.error)}</pre>')
    if summary.metrics:
        charts = "".join(
            f'<div style="display:inline-block"><div style="font-size:90%"><b>{escape(k)}</b> '
            f"= {s.last_value:.6g}</div>{sparkline(s, PALETTE[i % len(PALETTE)])}</div>"
            for i, (k, s) in enumerate(summary.metrics.items())
        )
        parts.append(f'<div style="margin-top:4px">{charts}</div>')
        parts.append(
            table(
                ["metric", "last", "step", "values"],
                [
                    (k, f"{s.last_value:.6g}", str(s.last_step), str(s.count))
                    for k, s in summary.metrics.items()
                ],
            )
        )
    if summary.params:
        parts.append(table(["param", "value"], list(summary.params.items())))
    return titled("jupyter-mlops run", "".join(parts))


SORT_SCRIPT = """<script>(function(){var t=document.getElementById('%s');if(!t)return;
t.querySelectorAll('th').forEach(function(th,i){th.style.cursor='pointer';th.title='sort';
th.onclick=function(){var b=t.tBodies[0],r=Array.from(b.rows),d=th.dataset.dir==='a'?-1:1;
th.dataset.dir=d>0?'a':'d';r.sort(function(x,y){
var p=x.cells[i].innerText,q=y.cells[i].innerText,m=parseFloat(p),n=parseFloat(q);
if(!isNaN(m)&&!isNaN(n))return d*(m-n);
return d*p.localeCompare(q);});
r.forEach(function(x){b.appendChild(x);});};});})();</script>"""


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def runs_html(frame: Any) -> str:
    """The ``%runs`` table; clicking a header sorts it (where the notebook runs scripts)."""
    table_id = f"mlops-runs-{id(frame):x}-{time.monotonic_ns():x}"
    header = [str(c) for c in frame.columns]
    rows = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    body = table(header, rows).replace("<table ", f'<table id="{table_id}" ', 1)
    title = f"{len(frame)} run(s)"
    return titled(title, body + SORT_SCRIPT % table_id)


def _diff_table(title: str, frame: Any, differs: list[bool]) -> str:
    header = [title, *[str(c) for c in frame.columns]]
    rows = []
    for (index, row), diff in zip(frame.iterrows(), differs, strict=True):
        style = f' style="{DIFF_STYLE}"' if diff else ""
        cells = "".join(f'<td style="padding:2px 8px">{escape(_cell(v))}</td>' for v in row)
        rows.append(f'<tr{style}><td style="padding:2px 8px">{escape(str(index))}</td>{cells}</tr>')
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{escape(h)}</th>' for h in header)
    return (
        '<table style="border-collapse:collapse;font-size:var(--jp-ui-font-size1,13px);'
        f'margin-bottom:6px"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


CURVE_W, CURVE_H, CURVE_PAD_L, CURVE_PAD_B, CURVE_PAD_T = 300, 150, 52, 22, 22
MAX_DRAWN_POINTS = 300  # a 300 px wide panel shows no more; keeps the output tens of KB


def curves_html(comparison: Comparison) -> str:
    """Each metric's curves as a small inline SVG panel: no script, so it renders offline,
    untrusted and after nbconvert to HTML. A metric logged once per run is a dot with its value.
    ``Comparison.figure()`` gives the interactive plotly version."""
    if not comparison.curves:
        return ""
    colours = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(comparison.labels)}
    legend = "".join(
        f'<span style="margin-right:10px;white-space:nowrap"><span style="color:{colour}">'
        f"&#9644;</span> {escape(label)}</span>"
        for label, colour in colours.items()
    )
    panels = "".join(
        _curve_svg(metric, series, colours) for metric, series in comparison.curves.items()
    )
    return (
        f'<div style="font-size:90%;margin:4px 0">{legend}</div>'
        f'<div style="display:flex;flex-wrap:wrap;gap:8px">{panels}</div>'
    )


def _curve_svg(
    metric: str, series: dict[str, tuple[list[int], list[float]]], colours: dict[str, str]
) -> str:
    finite = {
        label: [(s, v) for s, v in zip(steps, values, strict=True) if math.isfinite(v)]
        for label, (steps, values) in series.items()
    }
    points = [p for pairs in finite.values() for p in pairs]
    text_style = "fill:var(--jp-ui-font-color1,#1f2328)"
    muted = "fill:var(--jp-ui-font-color2,#57606a)"
    head = (
        f'<svg width="{CURVE_W}" height="{CURVE_H}" viewBox="0 0 {CURVE_W} {CURVE_H}" role="img" '
        f'style="font-family:var(--jp-ui-font-family,sans-serif);font-size:11px">'
        f"<title>{escape(metric)}</title>"
        f'<text x="{CURVE_PAD_L}" y="14" style="{text_style};font-weight:600">'
        f"{escape(metric)}</text>"
    )
    if not points:
        empty = f'<text x="{CURVE_PAD_L}" y="60" style="{muted}">no finite values</text>'
        return head + empty + "</svg>"
    steps = [s for s, _ in points]
    values = [v for _, v in points]
    x0, x1 = min(steps), max(steps)
    y0, y1 = min(values), max(values)
    if y0 == y1:
        y0, y1 = y0 - (abs(y0) or 1) * 0.05, y1 + (abs(y1) or 1) * 0.05
    width, height = CURVE_W - CURVE_PAD_L - 8, CURVE_H - CURVE_PAD_T - CURVE_PAD_B

    def x(step: float) -> float:
        return CURVE_PAD_L + (width / 2 if x1 == x0 else (step - x0) / (x1 - x0) * width)

    def y(value: float) -> float:
        return CURVE_PAD_T + (y1 - value) / (y1 - y0) * height

    axis = "stroke:var(--jp-border-color1,#d0d7de)"
    parts = [
        head,
        f'<path d="M{CURVE_PAD_L} {CURVE_PAD_T}V{CURVE_PAD_T + height}h{width}" '
        f'style="fill:none;{axis}"/>',
        f'<text x="{CURVE_PAD_L - 4}" y="{CURVE_PAD_T + 8}" text-anchor="end" style="{muted}">'
        f"{y1:.4g}</text>",
        f'<text x="{CURVE_PAD_L - 4}" y="{CURVE_PAD_T + height}" text-anchor="end" '
        f'style="{muted}">{y0:.4g}</text>',
        f'<text x="{CURVE_PAD_L}" y="{CURVE_H - 6}" style="{muted}">step {x0}</text>',
        f'<text x="{CURVE_PAD_L + width}" y="{CURVE_H - 6}" text-anchor="end" style="{muted}">'
        f"{x1}</text>",
    ]
    for label, pairs in finite.items():
        if not pairs:
            continue
        colour = colours[label]
        last_step, last_value = pairs[-1]
        tip = f"{label}: {last_value:.6g} at step {last_step}"
        if len(pairs) == 1:  # logged once: a dot with its value, never an empty chart
            cx, cy = x(last_step), y(last_value)
            parts.append(
                f'<g><title>{escape(tip)}</title><circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" '
                f'style="fill:{colour}"/><text x="{cx + 6:.1f}" y="{cy + 4:.1f}" '
                f'style="{text_style}">{last_value:.4g}</text></g>'
            )
            continue
        stride = max(1, math.ceil(len(pairs) / MAX_DRAWN_POINTS))
        drawn = pairs[::stride] + ([pairs[-1]] if (len(pairs) - 1) % stride else [])
        path = "M" + "L".join(f"{x(s):.1f} {y(v):.1f}" for s, v in drawn)
        parts.append(
            f'<path d="{path}" style="fill:none;stroke:{colour};stroke-width:1.5">'
            f"<title>{escape(tip)}</title></path>"
        )
    parts.append("</svg>")
    return "".join(parts)


def comparison_html(comparison: Comparison) -> str:
    parts = [
        '<div style="font-size:90%;margin-bottom:4px">highlighted rows differ between runs</div>'
    ]
    if len(comparison.params):
        parts.append(_diff_table("param", comparison.params, comparison.param_differs))
    if len(comparison.metrics):
        parts.append(_diff_table("metric", comparison.metrics, comparison.metric_differs))
    parts.append(curves_html(comparison))
    return titled(f"compare {len(comparison.run_ids)} runs", "".join(parts))
