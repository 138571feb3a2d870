"""``%snapshot diff``: schema, rows, changed columns and row ranges, stat shifts; no data read.

Cells are aligned to absolute row offsets, so comparing two manifests' cell ids position by
position tells which row chunks of which columns changed (an append changes only the last
chunk and adds new ones).
"""

from __future__ import annotations

from typing import Any

from .repository import Resolved, SnapshotStore
from .results import ColumnChange, SnapshotDiff, StatShift

SHIFT_STATS = ("nulls", "min", "max", "mean", "std", "categories", "min_len", "max_len")


def _ranges(
    cells_a: list[str], cells_b: list[str], rows: int, chunk_rows: int
) -> list[tuple[int, int]]:
    """Row ranges of the new snapshot whose cells differ, adjacent chunks merged."""
    ranges: list[tuple[int, int]] = []
    for k, cell in enumerate(cells_b):
        if k < len(cells_a) and cells_a[k] == cell:
            continue
        start, stop = k * chunk_rows, min((k + 1) * chunk_rows, rows)
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], stop)
        else:
            ranges.append((start, stop))
    return ranges


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


def _frame_changes(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[ColumnChange], int]:
    ca, cb = a["content"], b["content"]
    cols_a, cols_b = _columns(a), _columns(b)
    dtypes_a = {name: c["dtype"] for name, c in cols_a.items()}
    dtypes_b = {name: c["dtype"] for name, c in cols_b.items()}
    changes, unchanged = [], 0
    for name in cols_b:
        if name not in cols_a:
            changes.append(ColumnChange(name, "added", dtypes_b[name]))
    for name in cols_a:
        if name not in cols_b:
            changes.append(ColumnChange(name, "removed", dtypes_a[name]))
    same_chunks = ca["chunk_rows"] == cb["chunk_rows"]
    for name, col_b in cols_b.items():
        col_a = cols_a.get(name)
        if col_a is None:
            continue
        if col_a["type"] != col_b["type"] or dtypes_a[name] != dtypes_b[name]:
            changes.append(ColumnChange(name, "retyped", f"{dtypes_a[name]} -> {dtypes_b[name]}"))
        elif col_a["cells"] == col_b["cells"]:
            unchanged += 1
        else:
            chunked = same_chunks and col_b["type"] != "pickle"
            ranges = (
                _ranges(col_a["cells"], col_b["cells"], cb["rows"], cb["chunk_rows"])
                if chunked
                else [(0, cb["rows"])]
            )
            removed = len(col_a["cells"]) > len(col_b["cells"])
            detail = ", ".join(f"rows {start:,}-{stop - 1:,}" for start, stop in ranges)
            if removed:
                detail = ", ".join(filter(None, [detail, "rows removed at the end"]))
            changes.append(ColumnChange(name, "changed", detail, ranges))
    return changes, unchanged


def _stat_shifts(a: dict[str, Any], b: dict[str, Any]) -> list[StatShift]:
    stats_a = {c["name"]: c.get("stats", {}) for c in a.get("columns", [])}
    shifts = []
    for col in b.get("columns", []):
        before = stats_a.get(col["name"])
        if before is None:
            continue
        after = col.get("stats", {})
        for stat in SHIFT_STATS:
            if stat in before and stat in after and before[stat] != after[stat]:
                shifts.append(
                    StatShift(col["label"] or col["name"], stat, before[stat], after[stat])
                )
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
        changes, unchanged = _frame_changes(ma, mb)
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
    )
