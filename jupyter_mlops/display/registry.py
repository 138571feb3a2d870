"""HTML forms of ``ModelVersion`` and ``GateResult``: a pass/fail table of the gate's checks."""

from __future__ import annotations

from html import escape
from typing import Any

from .html import badge, table, titled

# What MLflow's pickle caution says, once, where the version is shown (%register hides the log).
PICKLED = {"sklearn": " (pickled: load only models you trust)"}


def gate_html(result: Any) -> str:
    rows = [
        (
            badge("ok" if row.passed else "fail"),
            row.name,
            row.value_text(),
            row.threshold,
            row.detail,
        )
        for row in result.rows
    ]
    body = table(("", "check", "value", "need", "detail"), rows, raw_columns=1)
    if result.reason:
        body += f'<div style="margin-top:4px">reason: {escape(result.reason)}</div>'
    if result.reports:
        body += (
            '<div style="margin-top:4px;opacity:0.7">reports: '
            + ", ".join(f"<code>{escape(path)}</code>" for path in result.reports)
            + "</div>"
        )
    return titled(result.headline(), body)


def model_version_html(version: Any) -> str:
    rows = [
        ("flavor", version.flavor + PICKLED.get(version.flavor, "")),
        ("run", f"{version.run_name} ({version.run_id})"),
        ("input snapshots", ", ".join(version.snapshots) or "none"),
        ("notebook", version.notebook or "unknown"),
        ("load", f"mlflow.pyfunc.load_model('{version.uri}')"),
    ]
    if version.aliases:
        rows.append(("aliases", ", ".join(version.aliases)))
    return titled(f"model {version.name} version {version.version}", table(("", ""), rows))
