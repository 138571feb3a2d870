"""A snapshot loads back exactly: every pandas 3 dtype, index kind, column label and attrs."""

from __future__ import annotations

import datetime
import decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pandas.testing import assert_frame_equal

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.errors import MLOpsUsageError
from jupyter_mlops.snapshots import service
from jupyter_mlops.snapshots.save import save

N = 6
COLUMNS: dict[str, Any] = {
    "int64": np.arange(N),
    "int8": np.arange(N, dtype="int8"),
    "uint64_max": np.full(N, np.iinfo(np.uint64).max, dtype="uint64"),
    "float16": np.arange(N, dtype="float16"),
    "float32": np.linspace(0, 1, N, dtype="float32"),
    "specials": [-0.0, 0.0, np.nan, np.inf, -np.inf, 5e-324],
    "Int64": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
    "UInt8": pd.array([1, None, 3, 4, 5, 6], dtype="UInt8"),
    "Float64": pd.array([1.5, None, 3, 4, 5, 6], dtype="Float64"),
    "boolean": pd.array([True, None, False, True, True, False], dtype="boolean"),
    "bool": [True, False] * 3,
    "str": list("abcdef"),
    "str_with_na": ["a", None, "c", "d", "e", "f"],
    "string_python": pd.array(list("abcdef"), dtype="string[python]"),
    "string_pyarrow": pd.array(["a", None, "c", "d", "e", "f"], dtype="string[pyarrow]"),
    "category": pd.Categorical(list("abcabc")),
    "category_ordered": pd.Categorical(list("abcabc"), categories=list("cba"), ordered=True),
    "category_int": pd.Categorical([1, 2, 3, 1, 2, None]),
    "category_unused": pd.Categorical(list("aaaaaa"), categories=list("ab")),
    "datetime_us": pd.date_range("2024-01-01", periods=N),
    "datetime_ns": pd.date_range("2024-01-01", periods=N).as_unit("ns"),
    "datetime_utc": pd.date_range("2024-01-01", periods=N, tz="UTC"),
    "datetime_berlin": pd.date_range("2024-03-30", periods=N, freq="12h", tz="Europe/Berlin"),
    "timedelta": pd.to_timedelta(np.arange(N), unit="s"),
    "period": pd.period_range("2024-01", periods=N, freq="M"),
    "interval": pd.interval_range(0, N),
    "decimal": pd.Series([decimal.Decimal("1.1")] * N, dtype=object),
    "bytes": pd.Series([b"x", b"", b"\0"] * 2, dtype=object),
    "date": pd.Series([datetime.date(2024, 1, i + 1) for i in range(N)], dtype=object),
    "int64_pyarrow": pd.array(np.arange(N), dtype="int64[pyarrow]"),
    "list_pyarrow": pd.array([[1, 2]] * N, dtype=pd.ArrowDtype(pa.list_(pa.int64()))),
    "all_none": pd.Series([None] * N, dtype=object),
    "object_str": pd.Series(["a", "b", None] * 2, dtype=object),
    "object_int": pd.Series([1, 2, 3] * 2, dtype=object),
    "object_float_none": pd.Series([1.5, None, 2.0] * 2, dtype=object),
    "object_timestamps": pd.Series([pd.Timestamp("2024-01-01"), None] * 3, dtype=object),
    "object_lists": pd.Series([[1, 2], [3], []] * 2, dtype=object),
    "object_dicts": pd.Series([{"a": 1}, {"a": 2}] * 3, dtype=object),
}


def round_trip(df: pd.DataFrame, name: str = "data") -> pd.DataFrame:
    snap = mlops.snapshot(df, name)
    assert snap.rows == len(df)
    back = mlops.load(snap.ref)
    assert isinstance(back, pd.DataFrame)
    report = mlops.verify_snapshots(snap.ref)  # schema and stats re-derived from the cells agree
    assert report.ok, repr(report)
    return back


@pytest.mark.parametrize("column", sorted(COLUMNS))
def test_every_dtype_round_trips_exactly(column: str) -> None:
    df = pd.DataFrame({column: COLUMNS[column]})
    back = round_trip(df)
    assert_frame_equal(back, df, check_exact=True)
    assert back[column].dtype == df[column].dtype


def test_all_dtypes_together_and_float_bits() -> None:
    df = pd.DataFrame(COLUMNS)
    payload = np.array([0x7FF8000000000123], dtype=np.uint64).view(np.float64)[0]
    df["specials"] = [-0.0, 0.0, np.nan, payload, -np.inf, 5e-324]
    back = round_trip(df)
    assert_frame_equal(back, df, check_exact=True)
    bits = back["specials"].to_numpy().view(np.uint64)
    assert list(bits) == list(df["specials"].to_numpy().view(np.uint64))


@pytest.mark.parametrize(
    "index",
    [
        pd.RangeIndex(10, 10 + 2 * N, 2),
        pd.Index(list("abcdef"), name="key"),
        pd.Index(np.arange(N) * 3),
        pd.MultiIndex.from_product([[1, 2], ["a", "b", "c"]], names=["i", "j"]),
        pd.date_range("2024", periods=N, tz="UTC", freq="D", name="day"),
        pd.CategoricalIndex(list("aabbcc")),
        pd.Index(list("abcdef"), dtype=object),
    ],
    ids=["range_step", "named", "int", "multi", "tz_freq", "categorical", "object"],
)
def test_index_kinds_round_trip(index: pd.Index) -> None:
    df = pd.DataFrame({"x": np.arange(N)}, index=index)
    back = round_trip(df)
    assert_frame_equal(back, df, check_exact=True, check_freq=True)


def test_column_labels_and_attrs_round_trip() -> None:
    frames = [
        pd.DataFrame(np.ones((3, 2)), columns=[0, 1]),
        pd.DataFrame(np.ones((3, 2)), columns=pd.MultiIndex.from_tuples([("a", "b"), ("a", "c")])),
        pd.DataFrame(np.ones((3, 2)), columns=pd.Index(["a", "b"], name="feature")),
    ]
    frames[2].attrs = {"source": "sensor", "version": 3}
    for k, df in enumerate(frames):
        assert_frame_equal(round_trip(df, f"labels{k}"), df, check_exact=True)
    assert round_trip(frames[2], "labels2").attrs == {"source": "sensor", "version": 3}


def test_empty_frames_round_trip() -> None:
    for k, df in enumerate([pd.DataFrame({"a": pd.Series([], dtype="Int64")}), pd.DataFrame()]):
        assert_frame_equal(round_trip(df, f"empty{k}"), df, check_exact=True)


def test_many_cells_round_trip_and_store_one_object_per_column_chunk() -> None:
    """Small chunks, so every column spans several cells (real ones hold about 1 MiB of rows)."""
    settings = current_settings()
    df = pd.DataFrame(COLUMNS).sample(n=200, replace=True, random_state=3)
    store = service.open_store(settings)
    snap = save(store, df, "cells", stat_cache=service.stat_cache_path(settings), chunk_rows=64)
    assert snap.objects_written == snap.objects
    manifest = store.manifest(snap.id)
    cells = [len(c["cells"]) for c in manifest["content"]["columns"]]
    # content-defined chunks of about 64 rows, shared by every column (the index column too)
    assert len(set(cells)) == 1 and cells[0] == len(manifest["content"]["chunks"]) >= 2
    assert_frame_equal(mlops.load("cells"), df, check_exact=True)
    assert mlops.verify_snapshots("cells").ok, repr(mlops.verify_snapshots("cells"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (pd.Series([1, "a"] * 3, dtype=object), "column 'bad' (dtype object)"),
        (pd.Series(np.arange(N) * 1j), "column 'bad' (dtype complex128)"),
        (pd.arrays.SparseArray([0, 0, 1, 0, 0, 0]), "column 'bad' is Sparse"),
    ],
    ids=["mixed_object", "complex", "sparse"],
)
def test_columns_arrow_cannot_hold_are_refused_by_name(values: Any, message: str) -> None:
    df = pd.DataFrame({"ok": np.arange(N), "bad": values})
    with pytest.raises(MLOpsUsageError) as caught:
        mlops.snapshot(df, "refused")
    assert message in str(caught.value) and "--allow-pickle" in str(caught.value)
    assert not Path(".mlops/snapshots/refs/refused").exists()


def test_duplicate_column_names_are_refused() -> None:
    df = pd.DataFrame(np.ones((2, 2)), columns=["a", "a"])
    with pytest.raises(MLOpsUsageError, match="duplicate column names a"):
        mlops.snapshot(df, "dupes")


def test_columns_arrow_cannot_hold_round_trip_as_pickled_cells_when_allowed() -> None:
    df = pd.DataFrame(
        {
            "ok": np.arange(N),
            "mixed": pd.array([1, "a"] * 3, dtype=object),
            "z": np.arange(N) * 1j,
            "sparse": pd.arrays.SparseArray([0, 0, 1, 0, 0, 0]),
        },
        index=pd.Index(list("abcdef"), name="key"),
    )
    snap = mlops.snapshot(df, "opaque", allow_pickle=True)
    assert snap.columns == ["ok", "mixed", "z", "sparse"]
    assert_frame_equal(mlops.load("opaque", allow_pickle=True), df, check_exact=True)
    assert mlops.snapshot(df, "opaque", allow_pickle=True).bytes_written == 0
    changed = df.assign(mixed=pd.array([2, "b"] * 3, dtype=object))
    mlops.snapshot(changed, "opaque", allow_pickle=True)
    d = mlops.diff("opaque@v1", "opaque@v2")
    # Pickled cells are named by their pickle bytes, which are not canonical (an unchanged Sparse
    # column may pickle differently after a copy), so only Arrow columns are compared exactly.
    changes = {c.column: c.change for c in d.changes}
    assert changes["mixed"] == "changed" and "ok" not in changes and "key" not in changes
    assert mlops.verify_snapshots().ok


def test_only_opaque_columns_keep_the_index_and_row_count() -> None:
    df = pd.DataFrame({"z": np.arange(4) * 1j}, index=pd.RangeIndex(5, 9))
    assert mlops.snapshot(df, "only", allow_pickle=True).rows == 4
    assert_frame_equal(mlops.load("only", allow_pickle=True), df, check_exact=True)
