"""Result objects of the snapshot store, with deterministic text forms (HTML: display/snapshots)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def stat_text(value: Any) -> str:
    """A statistic for display: floats to 6 significant digits, so float noise stays hidden."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Snapshot:
    """One saved version: ``name@vN`` and the content id it points at."""

    name: str
    version: int
    id: str
    kind: str  # dataframe, file or dir
    rows: int | None
    columns: list[str]
    bytes_written: int
    bytes: int
    objects: int
    objects_written: int
    reused: bool  # unchanged content: the existing version was returned
    created: str
    message: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    parent: str | None = None
    location: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def short_id(self) -> str:
        return self.id[:16]

    def shape(self) -> str:
        if self.kind == "dataframe":
            return f"{self.rows:,} rows x {len(self.columns)} columns"
        if self.kind == "dir":
            return f"{self.objects:,} files"
        return "1 file"

    def summary(self) -> str:
        if self.reused:
            return "unchanged: existing version returned, 0 B written"
        return (
            f"wrote {human_bytes(self.bytes_written)} of {human_bytes(self.bytes)} "
            f"({self.objects_written} of {self.objects} objects new)"
        )

    def __repr__(self) -> str:
        lines = [
            f"Snapshot {self.ref} ({self.kind}, {self.shape()})",
            f"  id      {self.short_id}",
            f"  stored  {self.summary()}",
        ]
        if self.parent:
            lines.append(f"  parent  {self.parent}")
        if self.tags:
            lines.append("  tags    " + ", ".join(f"{k}={v}" for k, v in sorted(self.tags.items())))
        if self.message:
            lines.append(f"  message {self.message}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ColumnChange:
    column: str
    change: str  # added, removed, retyped, changed
    detail: str = ""
    row_ranges: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class StatShift:
    column: str
    stat: str
    before: Any
    after: Any


@dataclass(frozen=True)
class SnapshotDiff:
    """What changed between two snapshots, computed from their manifests without reading data."""

    a: str
    b: str
    id_a: str
    id_b: str
    kind: str
    rows_a: int | None
    rows_b: int | None
    changes: list[ColumnChange]
    stat_shifts: list[StatShift]
    unchanged: int  # columns (or files) whose content is identical
    # False when rows were inserted or deleted inside the frame (the changed rows show where),
    # so the row count change is not put at the end
    rows_at_end: bool = True

    @property
    def identical(self) -> bool:
        return self.id_a == self.id_b

    def __bool__(self) -> bool:
        """Truthy when there is a difference, like a non-empty ``git diff``."""
        return not self.identical

    def by_change(self, change: str) -> list[ColumnChange]:
        return [c for c in self.changes if c.change == change]

    def rows_line(self) -> str | None:
        if self.rows_a is None or self.rows_b is None:
            return None
        delta = self.rows_b - self.rows_a
        line = f"{self.rows_a:,} -> {self.rows_b:,} ({delta:+,})"
        if delta and not self.rows_at_end:
            return f"{line}: rows inserted or deleted inside the frame (see the changed rows)"
        if delta > 0:
            return f"{line}: appended rows {self.rows_a:,}-{self.rows_b - 1:,}"
        if delta < 0:
            return f"{line}: removed rows {self.rows_b:,}-{self.rows_a - 1:,} at the end"
        return line

    def __repr__(self) -> str:
        item = "columns" if self.kind == "dataframe" else "files"
        lines = [f"SnapshotDiff {self.a} -> {self.b}"]
        if self.identical:
            lines.append("  identical content")
            return "\n".join(lines)
        if self.rows_line():
            lines.append(f"  rows       {self.rows_line()}")
        for change in ("added", "removed", "retyped", "changed"):
            for c in self.by_change(change):
                detail = f": {c.detail}" if c.detail else ""
                lines.append(f"  {change:<10} {c.column}{detail}")
        lines.append(f"  unchanged  {self.unchanged} {item}")
        for s in self.stat_shifts:
            before, after = stat_text(s.before), stat_text(s.after)
            lines.append(f"  stat       {s.column}.{s.stat}: {before} -> {after}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Problem:
    snapshot: str
    object: str
    problem: str


@dataclass(frozen=True)
class VerifyReport:
    """Every stored object re-hashed against its id; each manifest checked against its cells."""

    snapshots: int
    objects: int
    bytes: int
    problems: list[Problem]
    notes: list[str] = field(default_factory=list)  # e.g. pickled columns (need allow_pickle)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        verdict = "ok" if self.ok else f"{len(self.problems)} problem(s)"
        lines = [
            f"Snapshot verify: {verdict} ({self.snapshots} snapshot(s), {self.objects} "
            f"object(s), {human_bytes(self.bytes)} re-hashed)"
        ]
        lines += [f"  {p.snapshot}: {p.object}: {p.problem}" for p in self.problems]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class VersionVerdict:
    """What a keep policy (``gc --keep-last N``) decided for one version beyond the last N."""

    ref: str
    removed: bool
    reason: str  # "beyond the last 2", "tagged (stage=gold)", "used by run 1a2b3c4d (fit)"
    bytes: int = 0  # what removing it frees: bytes no kept version uses


@dataclass(frozen=True)
class GcReport:
    """What garbage collection removed (or would remove, in a dry run) and what the store holds."""

    dry_run: bool
    removed: dict[str, int]  # objects, manifests, temp files -> count
    reclaimed_bytes: int
    kept_objects: int
    kept_bytes: int
    versions: int
    by_name: dict[str, tuple[int, int]]  # name -> (versions, bytes its versions use)
    policy: str = ""  # the keep policy applied, e.g. "--keep-last 2 --keep-tagged"
    verdicts: list[VersionVerdict] = field(default_factory=list)

    @property
    def removed_versions(self) -> list[str]:
        return [v.ref for v in self.verdicts if v.removed]

    def __repr__(self) -> str:
        verb = "would reclaim" if self.dry_run else "reclaimed"
        parts = ", ".join(f"{n} {what}" for what, n in self.removed.items() if n) or "nothing"
        lines = [
            f"Snapshot gc{' (dry run)' if self.dry_run else ''}: {verb} "
            f"{human_bytes(self.reclaimed_bytes)} ({parts})",
            f"  kept  {self.kept_objects} object(s), {human_bytes(self.kept_bytes)}, "
            f"{self.versions} version(s)",
        ]
        for name, (versions, used) in sorted(self.by_name.items()):
            lines.append(f"  {name:<20} {versions} version(s)  {human_bytes(used)}")
        if self.policy:
            lines.append(f"  policy {self.policy}: {len(self.removed_versions)} version(s) gone")
            gone = "would remove" if self.dry_run else "removed"
            for v in self.verdicts:
                size = f"{human_bytes(v.bytes):>10}  " if v.removed else ""
                lines.append(f"  {gone if v.removed else 'kept':<12} {v.ref:<20} {size}{v.reason}")
        return "\n".join(lines)
