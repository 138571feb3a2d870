"""Small, dependency-free HTML building blocks shared by every rich output.

Outputs must render in JupyterLab, VS Code and nbconvert's HTML with no network: inline styles
only, JupyterLab's CSS variables with fallbacks so dark themes work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

BADGE_COLOURS = {"ok": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e"}


def badge(level: str) -> str:
    colour = BADGE_COLOURS.get(level, "#57606a")
    return (
        f'<span style="color:#fff;background:{colour};border-radius:3px;'
        f'padding:0 5px;font-size:85%">{escape(level)}</span>'
    )


def table(header: Sequence[str], rows: Iterable[Sequence[str]], *, raw_columns: int = 0) -> str:
    """A compact table; the first ``raw_columns`` cells of each row are trusted HTML."""
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{escape(h)}</th>' for h in header)
    body = []
    for row in rows:
        cells = [c if i < raw_columns else escape(c) for i, c in enumerate(row)]
        body.append(
            "<tr>"
            + "".join(f'<td style="text-align:left;padding:2px 8px">{c}</td>' for c in cells)
            + "</tr>"
        )
    return (
        '<table style="border-collapse:collapse;font-size:var(--jp-ui-font-size1,13px)">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def titled(title: str, body: str) -> str:
    return (
        '<div class="jupyter-mlops-output">'
        f'<div style="font-weight:600;margin-bottom:4px">{escape(title)}</div>{body}</div>'
    )
