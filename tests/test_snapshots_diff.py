"""The structured diff: row changes of the frame, columns changed only where shared rows differ."""

from __future__ import annotations

import numpy as np
import pandas as pd

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.display.snapshots import diff_html
from jupyter_mlops.snapshots import service
from jupyter_mlops.snapshots.save import save


def frame(rows: int, start: int = 0) -> pd.DataFrame:
    k = np.arange(start, start + rows)
    return pd.DataFrame({"x": k * 0.5, "k": k, "s": [f"row{i}" for i in k]})


def save_chunks(df: pd.DataFrame, name: str, chunk_rows: int) -> None:
    settings = current_settings()
    store = service.open_store(settings)
    save(store, df, name, stat_cache=service.stat_cache_path(settings), chunk_rows=chunk_rows)


def test_appended_rows_leave_every_column_unchanged() -> None:
    # 38 rows appended to 100, with 64-row chunks: the grown chunk's ids differ in every column.
    save_chunks(frame(100), "app", chunk_rows=64)
    save_chunks(frame(138), "app", chunk_rows=64)
    d = mlops.diff("app@v1", "app@v2")
    assert d.rows_line() == "100 -> 138 (+38): appended rows 100-137"
    assert d.changes == [] and d.unchanged == 3
    text = repr(d)
    assert "  changed " not in text and "unchanged  3 columns" in text
    html = diff_html(d)
    assert "appended rows 100-137" in html and "3 columns unchanged" in html
    assert html.count("<table") == 1  # the stat shifts; no empty table of changed columns


def test_diff_runs_from_the_first_ref_to_the_second() -> None:
    save_chunks(frame(100), "loss", chunk_rows=64)
    save_chunks(frame(62), "loss", chunk_rows=64)
    d = mlops.diff("loss@v1", "loss@v2")
    assert (d.a, d.b) == ("loss@v1", "loss@v2")
    assert d.rows_line() == "100 -> 62 (-38): removed rows 62-99 at the end"
    assert d.changes == [] and d.unchanged == 3


def test_an_edit_among_shared_rows_marks_only_that_column() -> None:
    save_chunks(frame(100), "edit", chunk_rows=64)
    edited = frame(130)
    edited.loc[70, "x"] = -1.0  # in the partial chunk the two versions share
    edited.loc[5, "s"] = "changed"  # in a full chunk
    save_chunks(edited, "edit", chunk_rows=64)
    d = mlops.diff("edit@v1", "edit@v2")
    changed = {c.column: c.row_ranges for c in d.changes}
    assert set(changed) == {"x", "s"} and all(c.change == "changed" for c in d.changes)
    # Only the content-defined chunk around each edit (never beyond the 100 shared rows).
    ((x_start, x_stop),) = changed["x"]
    ((s_start, s_stop),) = changed["s"]
    assert x_start <= 70 < x_stop <= 100 and s_start <= 5 < s_stop <= 100
    assert d.unchanged == 1  # k: only appended rows
    assert "appended rows 100-129" in repr(d)


def test_the_stored_index_is_called_index() -> None:
    shuffled = frame(50).sample(frac=1, random_state=0)  # its index is stored as a column
    mlops.snapshot(shuffled, "idx")
    mlops.snapshot(pd.concat([shuffled, frame(2, start=50).set_index(pd.Index([50, 51]))]), "idx")
    d = mlops.diff("idx@v1", "idx@v2")
    assert "__index_level_0__" not in repr(d) and "__index_level_0__" not in diff_html(d)
    assert d.changes == [] and d.unchanged == 4
    assert any(s.column == "index" and s.stat == "max" for s in d.stat_shifts)

    mlops.snapshot(frame(50), "ranged")  # a plain range index is metadata, not a column
    mlops.snapshot(shuffled, "ranged")
    d = mlops.diff("ranged@v1", "ranged@v2")
    assert ("index", "retyped", "range -> int64") in {
        (c.column, c.change, c.detail) for c in d.changes
    }
