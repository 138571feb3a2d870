"""HTML for snapshot results: a version card, a diff table, verify and gc reports."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from ..snapshots.results import human_bytes, stat_text
from .html import badge, table, titled

if TYPE_CHECKING:
    from ..snapshots.results import GcReport, Snapshot, SnapshotDiff, VerifyReport
    from ..snapshots.retention import Removal

CHANGE_LEVEL = {"added": "ok", "removed": "fail", "retyped": "warn", "changed": "warn"}


def snapshot_html(snap: Snapshot) -> str:
    rows = [
        ("id", f"<code>{escape(snap.short_id)}</code>"),
        ("content", escape(f"{snap.kind}, {snap.shape()}")),
        ("stored", escape(snap.summary())),
    ]
    if snap.kind == "dataframe" and snap.columns:
        rows.append(("columns", escape(", ".join(str(c) for c in snap.columns))))
    if snap.parent:
        rows.append(("parent", escape(snap.parent)))
    if snap.tags:
        rows.append(("tags", escape(", ".join(f"{k}={v}" for k, v in sorted(snap.tags.items())))))
    if snap.message:
        rows.append(("message", escape(snap.message)))
    return titled(f"Snapshot {snap.ref}", table(["", ""], rows, raw_columns=2))


def diff_html(d: SnapshotDiff) -> str:
    title = f"SnapshotDiff {d.a} -> {d.b}"
    if d.identical:
        return titled(title, f"<div>{badge('ok')} identical content</div>")
    summary = []
    if d.rows_line():
        summary.append(f"rows {escape(d.rows_line() or '')}")
    noun = "columns" if d.kind == "dataframe" else "files"
    summary.append(f"{d.unchanged} {noun} unchanged")
    body = f"<div>{' &middot; '.join(summary)}</div>"
    if d.changes:  # columns that only gained or lost rows at the end are unchanged
        body += table(
            ["", noun[:-1], "detail"],
            [(badge(c.change), escape(str(c.column)), escape(c.detail)) for c in d.changes],
            raw_columns=3,
        )
    if d.stat_shifts:
        body += table(
            ["column", "stat", "before", "after"],
            [
                (str(s.column), s.stat, stat_text(s.before), stat_text(s.after))
                for s in d.stat_shifts
            ],
        )
    return titled(title, body)


def verify_html(report: VerifyReport) -> str:
    head = (
        f"{badge('ok' if report.ok else 'fail')} {report.snapshots} snapshot(s), "
        f"{report.objects} object(s) re-hashed"
    )
    rows = [(p.snapshot, p.object, p.problem) for p in report.problems]
    body = f"<div>{head}</div>" + (table(["snapshot", "object", "problem"], rows) if rows else "")
    body += "".join(f"<div>note: {escape(note)}</div>" for note in report.notes)
    return titled("Snapshot verify", body)


def gc_html(report: GcReport) -> str:
    lines = repr(report).splitlines()
    rows = [
        (name, str(versions), human_bytes(used))
        for name, (versions, used) in sorted(report.by_name.items())
    ]
    body = f"<div>{escape(lines[0])}</div><div>{escape(lines[1].strip())}</div>" + table(
        ["name", "versions", "bytes used"], rows
    )
    if report.policy:
        gone = "would remove" if report.dry_run else "removed"
        body += f"<div>policy {escape(report.policy)}</div>" + table(
            ["", "version", "frees", "why"],
            [
                (
                    badge("fail" if v.removed else "ok") + (f" {gone}" if v.removed else " kept"),
                    v.ref,
                    human_bytes(v.bytes) if v.removed else "",
                    v.reason,
                )
                for v in report.verdicts
            ],
            raw_columns=1,
        )
    return titled("Snapshot gc", body)


def removal_html(removal: Removal) -> str:
    title = repr(removal).splitlines()[0]
    if removal.already:
        return titled(title, "")
    rows = []
    if removal.id:
        rows.append(("id", f"<code>{escape(removal.id[:16])}</code>"))
    freed = f"{human_bytes(removal.reclaimable_bytes)} at the next %snapshot gc"
    rows.append(("frees", escape(freed)))
    if removal.used_by:
        rows.append(("forced", escape("still used by " + ", ".join(removal.used_by))))
    return titled(title, table(["", ""], rows, raw_columns=2))
