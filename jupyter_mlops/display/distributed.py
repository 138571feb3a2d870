"""HTML forms of ``DistributedResult`` and ``DistributedStatus``."""

from __future__ import annotations

from html import escape
from typing import Any

from .html import badge, table, titled

STATE_LEVELS = {"ok": "ok", "submitted": "warn", "running": "warn", "cancelled": "warn"}


def short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def distributed_result_html(result: Any) -> str:
    facts = table(
        ["state", "world size", "nodes", "backend", "executor", "seconds"],
        [
            [
                badge(STATE_LEVELS.get(result.state, "fail")) + " " + escape(result.state),
                str(result.world_size),
                str(result.nnodes),
                result.backend,
                result.executor,
                f"{result.seconds:.1f}",
            ]
        ],
        raw_columns=1,
    )
    pulled = table(["name", "value (rank 0)"], [[k, short(v)] for k, v in result.values.items()])
    logs = f'<div style="opacity:.7">logs: {escape(str(result.job_dir / "logs"))}</div>'
    restarts = "".join(f"<div>{escape(line)}</div>" for line in result.restarts)
    body = restarts + facts + (pulled if result.values else "") + logs
    return titled(f"Distributed job {result.job_id}", body)


def distributed_status_html(status: Any) -> str:
    rows = [
        [
            badge(STATE_LEVELS.get(j.state, "fail")) + " " + escape(j.state),
            j.job_id,
            str(j.world_size),
            j.backend,
            j.executor,
            str(j.live_processes),
            str(j.restarts),
            "; ".join(r.summary for r in j.ranks),
        ]
        for j in status.jobs
    ]
    header = [
        "state",
        "job",
        "world size",
        "backend",
        "executor",
        "live processes",
        "restarts",
        "per rank (step time, memory)",
    ]
    note = ""
    if status.cancelled:
        note = f"<div>cancelled: {escape(', '.join(status.cancelled))}</div>"
    return titled("Distributed jobs", note + table(header, rows, raw_columns=1))
