"""HTML form of :class:`~jupyter_mlops.lineage.graph.Lineage`: an inline SVG graph and a table.

The graph is static SVG laid out in one column per kind (snapshots, runs, model versions, drift
reports, gate decisions), so it renders offline and in nbconvert's HTML with no script at all.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from .html import table, titled

if TYPE_CHECKING:
    from ..lineage.graph import Lineage

COLOURS = {
    "snapshot": "#0969da",
    "run": "#8250df",
    "model": "#1a7f37",
    "drift": "#9a6700",
    "gate": "#cf222e",
}
BOX_W, BOX_H, GAP_X, GAP_Y, PAD, LANE = 190, 46, 70, 18, 12, 8


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def lineage_svg(lineage: Lineage) -> str:
    from ..lineage.graph import KIND_TITLES, KINDS

    columns = [k for k in KINDS if lineage.of_kind(k)]
    place: dict[str, tuple[int, int]] = {}
    for col, kind in enumerate(columns):
        for row, node in enumerate(lineage.of_kind(kind)):
            place[node.key] = (PAD + col * (BOX_W + GAP_X), PAD + 22 + row * (BOX_H + GAP_Y))
    width = PAD * 2 + len(columns) * BOX_W + max(len(columns) - 1, 0) * GAP_X
    bottom = PAD + 22 + max(len(lineage.of_kind(k)) for k in columns) * (BOX_H + GAP_Y) - GAP_Y
    column_of = {node.key: columns.index(node.kind) for node in lineage.nodes}
    lanes = [e for e in lineage.edges if column_of[e.target] - column_of[e.source] != 1]
    height = bottom + LANE * (len(lanes) + 1) + PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage graph" '
        'style="font-family:var(--jp-ui-font-family,sans-serif);font-size:12px">',
        '<defs><marker id="mlops-lineage-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#6e7781"/></marker></defs>',
    ]
    for col, kind in enumerate(columns):
        x = PAD + col * (BOX_W + GAP_X)
        parts.append(
            f'<text x="{x}" y="{PAD + 10}" fill="{COLOURS[kind]}" font-weight="600">'
            f"{escape(KIND_TITLES[kind])}</text>"
        )
    for edge in lineage.edges:
        (x1, y1), (x2, y2) = place[edge.source], place[edge.target]
        sx, sy, tx, ty = x1 + BOX_W, y1 + BOX_H / 2, x2, y2 + BOX_H / 2
        if edge in lanes:  # skips a column: run below every box rather than through them
            lane = bottom + LANE * (lanes.index(edge) + 1)
            d = (
                f"M {sx} {sy} C {sx + 30} {sy}, {sx + 10} {lane}, {sx + 40} {lane} "
                f"L {tx - 40} {lane} C {tx - 10} {lane}, {tx - 30} {ty}, {tx} {ty}"
            )
        else:
            bend = (tx - sx) / 2
            d = f"M {sx} {sy} C {sx + bend} {sy}, {tx - bend} {ty}, {tx} {ty}"
        parts.append(
            f'<path d="{d}" fill="none" stroke="#8c959f" stroke-width="1.3" '
            f'marker-end="url(#mlops-lineage-arrow)"><title>{escape(edge.relation)}</title></path>'
        )
    for node in lineage.nodes:
        x, y = place[node.key]
        run_id = str(node.attrs.get("run_id") or "") if node.kind == "run" else ""
        second = node.detail.replace(run_id, run_id[:8]) if run_id else node.detail
        colour = COLOURS[node.kind]
        stroke = 3 if node.key == lineage.subject else 1.3
        parts.append(
            f"<g><title>{escape(node.kind)} {escape(node.label)}\n{escape(node.detail)}</title>"
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" '
            f'fill="var(--jp-layout-color1,#fff)" stroke="{colour}" stroke-width="{stroke}"/>'
            f'<text x="{x + 8}" y="{y + 18}" fill="var(--jp-ui-font-color0,#1f2328)" '
            f'font-weight="600">{escape(_clip(node.label, 26))}</text>'
            f'<text x="{x + 8}" y="{y + 36}" fill="var(--jp-ui-font-color2,#57606a)" '
            f'font-size="11px">{escape(_clip(second, 32))}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def lineage_html(lineage: Lineage) -> str:
    subject = lineage.node(lineage.subject)
    rows = [
        (n.kind, n.label, n.detail)
        for kind in ("snapshot", "run", "model", "drift", "gate")
        for n in lineage.of_kind(kind)
    ]
    labels = {n.key: n.label for n in lineage.nodes}
    links = [(labels[e.source], labels[e.target], e.relation) for e in lineage.edges]
    notes = "".join(
        f'<div style="color:var(--jp-ui-font-color2,#57606a)">note: {escape(n)}</div>'
        for n in lineage.notes
    )
    body = (
        f'<div style="overflow-x:auto">{lineage_svg(lineage)}</div>'
        + table(("kind", "object", "detail"), rows)
        + (
            "<details><summary>links</summary>"
            + table(("from", "to", "relation"), links)
            + "</details>"
            if links
            else ""
        )
        + notes
    )
    return titled(f"Lineage of {lineage.query} ({subject.kind} {subject.label})", body)
