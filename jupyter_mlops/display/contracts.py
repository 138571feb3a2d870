"""HTML forms of a contract, a contract check (rule, observed, passed) and a skew report."""

from __future__ import annotations

from html import escape
from typing import Any

from .html import badge, table, titled


def contract_html(contract: Any) -> str:
    rows = [(str(i), rule.text) for i, rule in enumerate(contract.rules, 1)]
    return titled(repr(contract).splitlines()[0], table(("", "rule"), rows))


def contract_result_html(result: Any) -> str:
    rows = [
        (
            badge("ok" if o.passed else "fail"),
            o.rule.text,
            o.observed,
            "manifest" if o.from_manifest else "data",
        )
        for o in result.outcomes
    ]
    body = table(("", "rule", "observed", "answered from"), rows, raw_columns=1)
    return titled(result.headline(), body + _reports(result.reports))


def skew_html(result: Any) -> str:
    shares = dict(result.mismatches)
    rows = [
        (
            badge("fail" if r.drifted else "ok"),
            r.column,
            r.test,
            f"{r.statistic:.4g}",
            f"{r.threshold:g}",
            f"{shares[r.column]:.1%}" if r.column in shares else "",
        )
        for r in result.drift.by_severity()
    ]
    header = ("", "feature", "test", "statistic", "threshold", "paired rows differing")
    body = table(header, rows, raw_columns=1)
    if result.decision is not None:
        checks = [
            (badge("ok" if c.passed else "fail"), c.name, c.value_text(), c.threshold)
            for c in result.decision.rows
        ]
        body += '<div style="margin-top:6px">' + table(
            ("", "--fail-on", "value", "passes when"), checks, raw_columns=1
        )
        body += _reports(result.decision.reports) + "</div>"
    return titled(result.headline(), body)


def _reports(paths: Any) -> str:
    if not paths:
        return ""
    shown = ", ".join(f"<code>{escape(path)}</code>" for path in paths)
    return f'<div style="margin-top:4px;opacity:0.7">reports: {shown}</div>'
