"""``%snapshot diff``: schema, rows, changed columns and row ranges, stat shifts.

A column's changed rows are the rows of the newer version held in cells the older version does
not have (for any manifest format: fixed or content-defined chunks), so an insert or a delete
marks only the rows around it. Rows added or removed at the end are one row change of the whole
frame ("appended rows 1,000-1,149"), not a change of every column: the last chunk the two
versions share in position is read and compared, every other chunk is judged by its id alone.
"""

from __future__ import annotations

from typing import Any

from .cells import read_cell
from .chunking import chunk_starts
from .repository import Resolved, SnapshotStore
from .results import ColumnChange, SnapshotDiff, StatShift

SHIFT_STATS = ("nulls", "min", "max", "mean", "std", "categories", "min_len", "max_len")


def _new_ranges(cells_a: list[str], cells_b: list[str], starts: list[int]) -> list[tuple[int, int]]:
    """Row ranges of the newer version held in cells the older one lacks, adjacent merged."""
    known = set(cells_a)
    ranges: list[tuple[int, int]] = []
    for k, cell in enumerate(cells_b):
        if cell in known:
            continue
        start, stop = starts[k], starts[k + 1]
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], stop)
        else:
            ranges.append((start, stop))
    return ranges


def _rows_at_end(ca: dict[str, Any], cb: dict[str, Any]) -> bool:
    """Did rows only grow or shrink at the end? Then the shorter version's last chunk starts
    where a chunk of the longer one does; an insert or delete inside shifts every later cut."""
    starts_a, starts_b = chunk_starts(ca), chunk_starts(cb)
    shorter, longer = (starts_a, starts_b) if starts_a[-1] <= starts_b[-1] else (starts_b, starts_a)
    return len(shorter) < 2 or shorter[-2] in set(longer)


def display_names(manifest: dict[str, Any]) -> dict[str, str]:
    """Stored column name -> what the user calls it (``__index_level_0__`` is the index)."""
    names = {}
    for column in manifest.get("columns", []):
        label = column.get("label")
        if column.get("index"):
            names[column["name"]] = f"index {label!r}" if label is not None else "index"
        else:
            names[column["name"]] = str(label if label is not None else column["name"])
    return names


def _range_index(manifest: dict[str, Any]) -> bool:
    """Whether the frame kept a plain range index (stored as metadata, not as a column)."""
    index_columns = (manifest["content"].get("pandas") or {}).get("index_columns", [])
    return len(index_columns) == 1 and isinstance(index_columns[0], dict)


def _columns(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every column by stored name: its type, displayed dtype and cells (pickled ones too)."""
    dtypes = {c["name"]: c.get("pandas_dtype") or c["arrow_type"] for c in manifest["columns"]}
    columns = {
        c["name"]: {"type": c["type"], "dtype": dtypes[c["name"]], "cells": c["cells"]}
        for c in manifest["content"]["columns"]
    }
    for entry in manifest["content"].get("opaque", []):
        columns[entry["label"]] = {
            "type": "pickle",
            "dtype": entry["dtype"],
            "cells": [entry["object"]],
        }
    return columns


class _SharedRows:
    """Compares the rows two versions of a frame both hold (``rows`` of them), column by column."""

    def __init__(
        self, store: SnapshotStore, a: Resolved, b: Resolved, ma: dict[str, Any], mb: dict[str, Any]
    ) -> None:
        self.store, self.a, self.b = store, a, b
        self.starts_a, self.starts_b = chunk_starts(ma["content"]), chunk_starts(mb["content"])
        self.rows = min(self.starts_a[-1], self.starts_b[-1])
        self.grown = self.starts_a[-1] != self.starts_b[-1]

    def changed_ranges(
        self, name: str, col_a: dict[str, Any], col_b: dict[str, Any]
    ) -> list[tuple[int, int]]:
        ranges = [
            (start, min(stop, self.rows))
            for start, stop in _new_ranges(col_a["cells"], col_b["cells"], self.starts_b)
            if start < self.rows
        ]
        if not self.grown or not ranges or ranges[-1][1] != self.rows:
            return ranges
        # The last shared rows sit in a chunk the shorter version cut at its end, so its ids
        # differ whenever rows were appended or removed: compare those rows themselves.
        k = max(i for i, s in enumerate(self.starts_b[:-1]) if s < self.rows)
        start = max(self.starts_b[k], ranges[-1][0])
        values_a = self._rows(col_a["cells"], self.starts_a, name, self.a, start)
        values_b = self._rows(col_b["cells"], self.starts_b, name, self.b, start)
        if values_a is None or values_b is None or not values_a.equals(values_b):
            return ranges
        head = ranges[-1][0]
        return ranges[:-1] + ([(head, start)] if head < start else [])

    def _rows(
        self, cells: list[str], starts: list[int], name: str, snapshot: Resolved, start: int
    ) -> Any:
        """Rows ``[start, self.rows)`` of one column, read from the cells holding them."""
        import pyarrow as pa

        parts = []
        for k, cell in enumerate(cells):
            lo, hi = starts[k], starts[k + 1]
            if hi <= start or lo >= self.rows:
                continue
            values = read_cell(self.store.backend, cell, name, verify=False, snapshot=snapshot.ref)
            first, last = max(lo, start), min(hi, self.rows)
            parts.append(values.slice(first - lo, last - first))
        if not parts:
            return None
        return pa.chunked_array([c for p in parts for c in p.chunks], type=parts[0].type)


def _frame_changes(
    store: SnapshotStore, a: Resolved, b: Resolved, ma: dict[str, Any], mb: dict[str, Any]
) -> tuple[list[ColumnChange], int]:
    ca, cb = ma["content"], mb["content"]
    cols_a, cols_b = _columns(ma), _columns(mb)
    names = {**display_names(ma), **display_names(mb)}
    shown = {name: names.get(name, name) for name in {*cols_a, *cols_b}}
    dtypes_a = {name: c["dtype"] for name, c in cols_a.items()}
    dtypes_b = {name: c["dtype"] for name, c in cols_b.items()}
    changes, unchanged = [], 0
    for name in cols_b:
        if name not in cols_a:
            if shown[name] == "index" and _range_index(ma):
                changes.append(ColumnChange(shown[name], "retyped", f"range -> {dtypes_b[name]}"))
            else:
                changes.append(ColumnChange(shown[name], "added", dtypes_b[name]))
    for name in cols_a:
        if name not in cols_b:
            if shown[name] == "index" and _range_index(mb):
                changes.append(ColumnChange(shown[name], "retyped", f"{dtypes_a[name]} -> range"))
            else:
                changes.append(ColumnChange(shown[name], "removed", dtypes_a[name]))
    shared_rows = min(ca["rows"], cb["rows"])
    shared = _SharedRows(store, a, b, ma, mb)
    for name, col_b in cols_b.items():
        col_a = cols_a.get(name)
        if col_a is None:
            continue
        if col_a["type"] != col_b["type"] or dtypes_a[name] != dtypes_b[name]:
            detail = f"{dtypes_a[name]} -> {dtypes_b[name]}"
            changes.append(ColumnChange(shown[name], "retyped", detail))
            continue
        if col_a["cells"] == col_b["cells"]:
            unchanged += 1
            continue
        if col_b["type"] != "pickle":
            ranges = shared.changed_ranges(name, col_a, col_b)
        else:
            ranges = [(0, shared_rows)]
        if not ranges:
            unchanged += 1  # only rows appended or removed at the end: the frame's row change
            continue
        detail = ", ".join(f"rows {start:,}-{stop - 1:,}" for start, stop in ranges)
        changes.append(ColumnChange(shown[name], "changed", detail, ranges))
    return changes, unchanged


def _stat_shifts(a: dict[str, Any], b: dict[str, Any]) -> list[StatShift]:
    stats_a = {c["name"]: c.get("stats", {}) for c in a.get("columns", [])}
    names = display_names(b)
    shifts = []
    for col in b.get("columns", []):
        before = stats_a.get(col["name"])
        if before is None:
            continue
        after = col.get("stats", {})
        for stat in SHIFT_STATS:
            if stat in before and stat in after and before[stat] != after[stat]:
                shifts.append(StatShift(names[col["name"]], stat, before[stat], after[stat]))
    return shifts


def _file_changes(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[ColumnChange], int]:
    def entries(content: dict[str, Any]) -> dict[str, dict[str, Any]]:
        if content["kind"] == "file":
            return {content["name"]: content}
        return {e["path"]: e for e in content["entries"]}

    ea, eb = entries(a["content"]), entries(b["content"])
    changes, unchanged = [], 0
    for path, entry in eb.items():
        old = ea.get(path)
        if old is None:
            changes.append(ColumnChange(path, "added", f"{entry['size']:,} bytes"))
        elif old["object"] != entry["object"]:
            changes.append(
                ColumnChange(path, "changed", f"{old['size']:,} -> {entry['size']:,} bytes")
            )
        else:
            unchanged += 1
    for path, entry in ea.items():
        if path not in eb:
            changes.append(ColumnChange(path, "removed", f"{entry['size']:,} bytes"))
    return changes, unchanged


def diff(store: SnapshotStore, a: Resolved, b: Resolved) -> SnapshotDiff:
    ma, mb = store.manifest(a.id, a.ref), store.manifest(b.id, b.ref)
    kind_a, kind_b = ma["content"]["kind"], mb["content"]["kind"]
    frames = kind_a == kind_b == "dataframe"
    if frames:
        changes, unchanged = _frame_changes(store, a, b, ma, mb)
        shifts = _stat_shifts(ma, mb)
    else:
        changes, unchanged = _file_changes(ma, mb)
        shifts = []
    return SnapshotDiff(
        a=a.ref,
        b=b.ref,
        id_a=a.id,
        id_b=b.id,
        kind=kind_b if kind_a == kind_b else f"{kind_a} -> {kind_b}",
        rows_a=ma["content"].get("rows") if frames else None,
        rows_b=mb["content"].get("rows") if frames else None,
        changes=changes,
        stat_shifts=shifts,
        unchanged=unchanged,
        rows_at_end=_rows_at_end(ma["content"], mb["content"]) if frames else True,
    )
