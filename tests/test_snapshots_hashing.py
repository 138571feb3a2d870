"""Canonical content ids: pinned values, chunk-layout independence, bitwise float identity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import jupyter_mlops as mlops
from jupyter_mlops.snapshots.frames import to_arrow
from jupyter_mlops.snapshots.hashing import cell_id
from jupyter_mlops.snapshots.repository import object_key
from tests.store_files import read_object, stored_objects


def golden_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "f": [0.5, -0.0, np.nan, 1e300],
            "i": np.array([1, 2, 3, 4], dtype="int64"),
            "n": pd.array([1, None, 3, None], dtype="Int64"),
            "s": ["a", "bb", None, "dddd"],
            "c": pd.Categorical(["x", "y", "x", None], categories=["y", "x"]),
            "t": pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC"),
            "b": [True, False, True, False],
        }
    )


# An accidental change of the hash changes these and fails loudly: ids name stored objects, so a
# silent change would orphan every store. Change them only with a new store format version.
GOLDEN_CELLS = {
    "f": "324fb35405deebb564f515dff5b0efcf3f19888ef98d11d244825c32728827a2",
    "i": "98ebaf0add1054c7611d13ff06132a8185c66edc29264a0c8bb156bf6f73257f",
    "n": "5fa754f0d71c228a15e90b812dda6adc003230e5c9c42290ad955000e6383568",
    "s": "598527004046a7a01ecdfb5b018be2b00a83e35182a83c173e16c79592184432",
    "c": "711701222d54dbfe9abe05d3d0f61b9b0d4acf255eb8463545ccc354111a4507",
    "t": "8d891ca2f90d313df3c23790b48d0e47a639afe479c1890b8b501e8bdd80bb2b",
    "b": "0d88f8f43caf68339909dca7584c855d8f6fb1387c65f7ae912c5ada68636bbe",
}
# The snapshot id also covers the pandas metadata pyarrow writes (dtype names), not its version.
# Manifest format 2 (content-defined chunks); the cell ids above did not change with it. The
# manifest records the chunk bounds, so this id changed when row chunks grew to ~2 MiB.
GOLDEN_SNAPSHOT = "6ec2583e89ad9ceefe0b4a3cc4992da77bb5dc2ad1b80a2b4ec9207f09901510"


def test_golden_cell_ids() -> None:
    table, _ = to_arrow(golden_frame())
    assert {name: cell_id(name, table.column(name)) for name in GOLDEN_CELLS} == GOLDEN_CELLS


def test_golden_snapshot_id_and_stored_cells() -> None:
    snap = mlops.snapshot(golden_frame(), "golden")
    assert snap.id == GOLDEN_SNAPSHOT
    assert {object_key(cell) for cell in GOLDEN_CELLS.values()} <= stored_objects()
    table, _ = to_arrow(golden_frame())
    for name, cell in GOLDEN_CELLS.items():  # the bytes stored for each are that very column
        with pa.ipc.open_file(pa.BufferReader(read_object(cell))) as reader:
            column = reader.read_all().column(0)
        assert column.type == table.schema.field(name).type and len(column) == len(golden_frame())
        assert cell_id(name, column) == cell  # re-hashed from the decoded values


def rechunk(table: pa.Table, sizes: list[int]) -> pa.Table:
    """The same rows as ``table`` in chunks of the given sizes (cycled)."""
    batches, start, k = [], 0, 0
    while start < table.num_rows:
        size = sizes[k % len(sizes)]
        batches.append(table.slice(start, size).combine_chunks().to_batches()[0])
        start, k = start + size, k + 1
    return pa.Table.from_batches(batches, schema=table.schema)


def mixed_frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    nullable = pd.array(rng.integers(0, 50, rows), dtype="Int64")
    nullable[::7] = pd.NA
    strings = pd.Series([f"s{v}" if v % 5 else None for v in rng.integers(0, 99, rows)])
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "n": nullable,
            "s": strings.astype("str"),
            "c": pd.Categorical(rng.choice(["a", "b", "c"], rows)),
            "flag": rng.random(rows) < 0.3,
            "ts": pd.date_range("2020", periods=rows, freq="min", tz="Europe/Berlin"),
        }
    )


@pytest.mark.parametrize("sizes", [[1], [7, 1, 100], [333], [1000, 17]])
def test_ids_do_not_depend_on_chunk_layout(sizes: list[int]) -> None:
    table = pa.Table.from_pandas(mixed_frame(1000))
    chunked = rechunk(table, sizes)
    assert chunked.column("x").num_chunks > 1 or sizes == [1000, 17]
    for name in table.column_names:
        assert cell_id(name, chunked.column(name)) == cell_id(name, table.column(name)), name


def test_ids_are_the_same_after_a_parquet_round_trip(tmp_path: Path) -> None:
    """``pq.read_table`` gives large_string and small chunks: the id must not notice."""
    table = pa.Table.from_pandas(mixed_frame(3000))
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=256)
    back = pq.read_table(tmp_path / "t.parquet")
    assert back.column("x").num_chunks > 1
    for name in ("x", "n", "s", "flag", "ts"):
        assert cell_id(name, back.column(name)) == cell_id(name, table.column(name)), name


def test_string_width_and_views_do_not_change_the_id() -> None:
    values = pa.array(["a", None, "ccc"], pa.string())
    ids = {cell_id("s", values.cast(t)) for t in (pa.large_string(), pa.string_view())}
    assert ids == {cell_id("s", values)}


def test_values_under_nulls_do_not_change_the_id() -> None:
    clean = pa.array([1, None, 3], pa.int64())
    dirty = pa.Array.from_buffers(
        pa.int64(), 3, [clean.buffers()[0], pa.py_buffer(np.array([1, 99, 3]).tobytes())]
    )
    assert dirty.to_pylist() == clean.to_pylist()
    assert cell_id("n", dirty) == cell_id("n", clean)


def test_negative_zero_and_nan_payloads_are_kept_apart() -> None:
    zeros = [cell_id("f", pa.array([z])) for z in (0.0, -0.0)]
    quiet = np.array([np.nan])
    payload = np.array([0x7FF8000000000001], dtype=np.uint64).view(np.float64)
    nans = [cell_id("f", pa.array(v)) for v in (quiet, payload)]
    assert zeros[0] != zeros[1]
    assert nans[0] != nans[1]


def test_name_type_and_categories_are_part_of_the_id() -> None:
    values = pa.array([1, 2, 3], pa.int64())
    assert cell_id("a", values) != cell_id("b", values)
    assert cell_id("a", values) != cell_id("a", values.cast(pa.int32()))
    cats = pd.Categorical(["x", "y"], categories=["x", "y"])
    more = pd.Categorical(["x", "y"], categories=["x", "y", "z"])
    ids = {cell_id("c", pa.array(c)) for c in (cats, more, cats.reorder_categories(["y", "x"]))}
    assert len(ids) == 3
