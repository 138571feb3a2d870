"""Content-defined chunks: bytes written per edit kind, random edits round-trip, v1 stores load."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.snapshots import service
from jupyter_mlops.snapshots.save import save

CHUNK = 4096  # average rows of a chunk here: min 1024, max 16384


def frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64) * 7 + seed * 10**9,
            "x": rng.normal(size=rows),
            "s": pd.Series(rng.integers(0, 10**6, rows)).map("u{:07d}".format),
            "flag": rng.random(rows) < 0.5,
        }
    )


def save_avg(df: pd.DataFrame, name: str, chunk_rows: int = CHUNK) -> mlops.Snapshot:
    settings_ = current_settings()
    store = service.open_store(settings_)
    return save(
        store, df, name, stat_cache=service.stat_cache_path(settings_), chunk_rows=chunk_rows
    )


def edit(df: pd.DataFrame, kind: str, share: float, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = max(1, int(len(df) * share))
    at = int(rng.integers(0, len(df) - n))
    if kind == "append":
        return pd.concat([df, frame(n, seed=seed)], ignore_index=True)
    if kind == "insert":
        return pd.concat([df.iloc[:at], frame(n, seed=seed), df.iloc[at:]], ignore_index=True)
    if kind == "delete":
        return df.drop(index=range(at, at + n)).reset_index(drop=True)
    edited = df.copy()
    edited.loc[at : at + n - 1, "x"] = rng.normal(size=n)
    return edited


# Sizes around the chunk bounds (min 1024, max 16384 rows) and up to 200k rows.
@pytest.mark.parametrize("rows", [16_383, 16_385, 65_537, 200_000])
@pytest.mark.parametrize("kind", ["append", "insert", "delete", "update"])
def test_a_one_percent_edit_writes_about_one_percent_plus_a_few_chunks(
    kind: str, rows: int
) -> None:
    first = save_avg(frame(rows), "e")
    after = edit(frame(rows), kind, 0.01)
    second = save_avg(after, "e")
    per_row = first.bytes / rows
    # k% of the rows plus a few average chunks (boundaries resynchronise within a few chunks)
    bound = 0.01 * first.bytes + 6 * CHUNK * per_row
    assert 0 < second.bytes_written <= bound, (second.bytes_written, bound)
    assert_frame_equal(mlops.load("e@v2"), after)
    d = mlops.diff("e@v1", "e@v2")
    if kind == "append":
        assert d.changes == [] and "appended rows" in (d.rows_line() or "")
    else:  # only the rows around the edit are new, in every column the boundaries moved in
        changed = [r for c in d.changes for r in c.row_ranges]
        assert changed and all(
            stop - start <= 0.01 * rows + 4 * 4 * CHUNK for start, stop in changed
        )
        if kind != "update":
            assert "inside the frame" in (d.rows_line() or "")


def test_an_unchanged_resnapshot_writes_nothing_and_other_sources_cut_alike() -> None:
    import pyarrow as pa

    df = frame(50_000)
    first = save_avg(df, "same")
    again = save_avg(df.copy(), "same")
    assert (again.version, again.bytes_written) == (1, 0)
    # The same rows as Arrow batches of another size cut at the same boundaries: same cells.
    table = pa.Table.from_pandas(df, preserve_index=False)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=777))
    arrow = save_avg(reader, "same-arrow")
    assert arrow.bytes_written == 0 and arrow.objects == first.objects


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["append", "insert", "delete", "update"]),
        st.floats(0.001, 0.2),
        st.integers(0, 1000),
    ),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.integers(50, 5_000), edits=EDITS)
def test_random_edit_sequences_round_trip_exactly(
    rows: int, edits: list[tuple[str, float, int]]
) -> None:
    name = f"h{rows}-{abs(hash(tuple(edits))) % 10**8}"
    df = frame(rows)
    frames = [df]
    for kind, share, seed in edits:
        if len(df) < 4:
            break
        df = edit(df, kind, share, seed)
        frames.append(df)
    snaps = [save_avg(f, name, chunk_rows=64) for f in frames]
    for snap, expected in zip(snaps, frames, strict=True):
        assert_frame_equal(mlops.load(snap.ref), expected)
    batches = list(mlops.load(snaps[-1].ref, batches=True))
    assert sum(b.num_rows for b in batches) == len(frames[-1])


V1_STORE = Path(__file__).parent / "data" / "snapshot_store_v1"


def v1_frame(rows: int) -> pd.DataFrame:
    """The frames the checked-in v1 store holds (written by format 1: fixed 64-row chunks)."""
    k = np.arange(rows)
    return pd.DataFrame(
        {
            "x": k * 0.5,
            "k": k,
            "s": [f"row{i}" for i in k],
            "c": pd.Categorical(["a", "b", "c"][i % 3] for i in k),
            "n": pd.array([None if i % 7 == 0 else i for i in k], dtype="Int64"),
        }
    )


def test_a_format_1_store_still_loads_verifies_and_diffs(tmp_path: Path) -> None:
    store = current_settings().snapshot_store
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(V1_STORE, store)
    assert_frame_equal(mlops.load("old@v1"), v1_frame(100))
    second = v1_frame(130)
    second.loc[5, "s"] = "changed"
    assert_frame_equal(mlops.load("old@v2"), second)
    assert mlops.verify_snapshots().ok
    d = mlops.diff("old@v1", "old@v2")
    assert [(c.column, c.row_ranges) for c in d.changes] == [("s", [(0, 64)])]
    assert d.rows_line() == "100 -> 130 (+30): appended rows 100-129"
    # A new version (format 2) diffs against the old one, and unchanged cells are shared.
    third = pd.concat([second, v1_frame(10)], ignore_index=True)
    snap = mlops.snapshot(third, "old")
    assert snap.version == 3
    assert_frame_equal(mlops.load("old@v3"), third)
    assert {c.column for c in mlops.diff("old@v2", "old@v3").changes} <= {"x", "k", "s", "c", "n"}
    batches = list(mlops.load("old@v1", batches=True))
    assert [b.num_rows for b in batches] == [64, 36]
