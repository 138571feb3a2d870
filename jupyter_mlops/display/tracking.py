"""HTML of tracked runs: the live/final run summary, the runs table and run comparisons.

The run chart is inline SVG (cheap enough to redraw a few times a second, no JavaScript, so
it survives nbconvert and untrusted notebooks); comparisons use plotly, with plotly.js
embedded in the first comparison output of the session only.
"""

from __future__ import annotations

import math
import sys
import time
from html import escape
from typing import TYPE_CHECKING, Any

from .html import badge, table, titled

if TYPE_CHECKING:
    from ..tracking.compare import Comparison
    from ..tracking.logger import MetricSeries
    from ..tracking.run import RunSummary, TrackedRun

LIVE_INTERVAL_S = 0.4
STATUS_LEVEL = {"FINISHED": "ok", "RUNNING": "warn", "FAILED": "fail", "KILLED": "fail"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
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


_plotly_js_sent = False


def curves_html(comparison: Comparison) -> str:
    """Overlaid metric curves; plotly.js is inlined once per session, later figures reuse it."""
    global _plotly_js_sent
    if not comparison.curves:
        return ""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(comparison.curves)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names)
    for col, metric in enumerate(names, start=1):
        for i, (label, (steps, values)) in enumerate(comparison.curves[metric].items()):
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=values,
                    mode="lines",
                    name=label,
                    legendgroup=label,
                    showlegend=col == 1,
                    line={"color": PALETTE[i % len(PALETTE)]},
                ),
                row=1,
                col=col,
            )
    fig.update_layout(height=320, width=max(420, 360 * len(names)), margin=dict(t=30, b=30))
    include = not _plotly_js_sent
    _plotly_js_sent = True
    return str(fig.to_html(full_html=False, include_plotlyjs=include))


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
