"""A re-snapshot of a table this process (or an earlier one of the project) already snapshotted
is recognised by its fingerprint.

The recalled content must be exactly what cutting and hashing the table again would give: every
test compares the id of a save that may recall with the id of the same table saved after the
process forgot everything (``RECENT.clear()``), and edits made in place (same buffers, new
values) must never be recalled as the old version.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.snapshots import service
from jupyter_mlops.snapshots.fingerprints import RECENT, Seen, fingerprint, seen_folder
from tests.store_files import stored_objects
from tests.test_snapshots_reuse import frame as reuse_frame

save_module = importlib.import_module("jupyter_mlops.snapshots.save")
REPO = Path(__file__).resolve().parents[1]


def frame(rows: int = 3_000, seed: int = 0) -> pd.DataFrame:
    """Floats, ints, nullable ints, strings, a categorical, tz-aware times and booleans."""
    return reuse_frame(rows, seed)


def forget() -> None:
    """Forget every table seen: this process's and the project's (earlier processes)."""
    RECENT.clear()
    Seen(seen_folder(service.stat_cache_path(current_settings()))).clear()


def fresh_id(obj: Any, name: str) -> str:
    """The id a process that never saw ``obj`` computes (cut and hashed from scratch)."""
    forget()
    return mlops.snapshot(obj, name).id


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Calls of the full path (cutting and hashing a table)."""
    calls: list[str] = []
    real = save_module.table_content

    def table_content(*args: Any, **kwargs: Any) -> Any:
        calls.append("table_content")
        return real(*args, **kwargs)

    monkeypatch.setattr(save_module, "table_content", table_content)
    return calls


def test_an_unchanged_frame_is_recalled_without_cutting_or_hashing(counted: list[str]) -> None:
    df = frame()
    first = mlops.snapshot(df, "data")
    assert counted == ["table_content"]
    again = mlops.snapshot(df, "data")
    assert counted == ["table_content"]  # recalled: no chunking, no cell hashed
    assert (again.id, again.version, again.reused, again.bytes_written) == (first.id, 1, True, 0)
    assert again.rows == len(df) and again.bytes == first.bytes
    assert fresh_id(df, "data") == first.id
    assert_frame_equal(mlops.load("data"), df)


SAVED_ELSEWHERE = """
import jupyter_mlops as mlops
from tests.test_snapshots_reuse import frame
print(mlops.snapshot(frame(3_000), "data").id)
"""


def test_a_frame_saved_by_an_earlier_process_is_recalled_from_the_project_cache(
    counted: list[str], tmp_path: Path
) -> None:
    """A restarted kernel re-running its notebook: the unchanged frame is not cut again, the
    id comes from the project's cache and its content from the store's manifest."""
    script = tmp_path / "save.py"
    script.write_text(SAVED_ELSEWHERE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert child.returncode == 0, child.stderr
    df = frame()
    again = mlops.snapshot(df, "data")
    assert counted == []  # no chunking, no cell hashed in this process
    assert (again.id, again.version, again.reused) == (child.stdout.split()[-1], 1, True)
    edited = df.assign(x=df.x + 1)
    assert mlops.snapshot(edited, "data").version == 2 and counted == ["table_content"]
    # A damaged cache entry is only a miss: the table takes the full path, same id.
    folder = seen_folder(service.stat_cache_path(current_settings()))
    for entry in folder.iterdir():
        entry.write_text("not an id")
    RECENT.clear()
    assert mlops.snapshot(edited, "data").id == fresh_id(edited, "data")
    assert counted == ["table_content"] * 3
    assert_frame_equal(mlops.load("data"), edited)


def _set_x(df: pd.DataFrame) -> None:
    df.iloc[17, 0] = 1234.5


def _set_string(df: pd.DataFrame) -> None:
    df.loc[5, "s"] = "changed"


def _set_null(df: pd.DataFrame) -> None:
    df.loc[9, "n"] = pd.NA


def _set_category(df: pd.DataFrame) -> None:
    df.loc[3, "c"] = "e" if df.loc[3, "c"] != "e" else "a"


def _flip_bool(df: pd.DataFrame) -> None:
    df.loc[2999, "b"] = not df.loc[2999, "b"]


def _shift_time(df: pd.DataFrame) -> None:
    df.loc[0, "t"] = df.loc[0, "t"] - pd.Timedelta("1s")


def _rename_column(df: pd.DataFrame) -> None:
    df.columns = ["y", *df.columns[1:]]


def _rename_index(df: pd.DataFrame) -> None:
    df.index.name = "row"


def _retype(df: pd.DataFrame) -> None:
    df["i"] = df["i"].astype("Int64")  # the same values, another dtype


def _add_category(df: pd.DataFrame) -> None:
    df["c"] = df["c"].cat.add_categories(["z"])  # unused categories are part of the data


@pytest.mark.parametrize(
    "edit",
    [
        _set_x,
        _set_string,
        _set_null,
        _set_category,
        _flip_bool,
        _shift_time,
        _rename_column,
        _rename_index,
        _retype,
        _add_category,
    ],
)
def test_an_edit_in_place_is_never_recalled_as_the_old_version(
    edit: Callable[[pd.DataFrame], None],
) -> None:
    df = frame()
    first = mlops.snapshot(df, "data")
    edit(df)  # in place: the same frame object, mostly the same buffers
    second = mlops.snapshot(df, "data")
    assert second.id != first.id and second.version == 2
    assert second.id == fresh_id(df, "data")
    assert_frame_equal(mlops.load("data@v2"), df)


def test_slices_of_one_table_are_told_apart() -> None:
    table = pa.Table.from_pandas(frame(), preserve_index=False)
    prints = {
        fingerprint(part, part.schema, {})
        for part in (table.slice(0, 100), table.slice(1, 100), table.slice(0, 101), table)
    }
    assert len(prints) == 4
    for start in (0, 1):
        part = table.slice(start, 1_000)
        recalled = mlops.snapshot(part, f"part{start}")
        assert mlops.snapshot(part, f"part{start}").reused
        assert recalled.id == fresh_id(part, f"part{start}")
        assert mlops.load(f"part{start}", as_="arrow").equals(part)


def test_arrow_tables_and_polars_frames_are_recalled_too(counted: list[str]) -> None:
    import polars as pl

    table = pa.Table.from_pandas(frame(), preserve_index=False)
    polars_frame = pl.from_arrow(table)
    for name, obj in (("arrow", table), ("polars", polars_frame)):
        first = mlops.snapshot(obj, name)
        again = mlops.snapshot(obj, name)
        assert again.reused and again.id == first.id
    assert counted == ["table_content", "table_content"]


def test_types_without_a_fingerprint_take_the_full_path(counted: list[str]) -> None:
    table = pa.table({"items": pa.array([[1, 2], [3], None, []]), "k": [1, 2, 3, 4]})
    assert fingerprint(table, table.schema, {}) is None
    first = mlops.snapshot(table, "lists")
    again = mlops.snapshot(table, "lists")
    assert again.reused and again.id == first.id and counted == ["table_content"] * 2


def test_a_removed_version_is_not_recalled_and_its_data_is_written_again() -> None:
    df = frame()
    first = mlops.snapshot(df, "gone")
    mlops.remove_snapshot("gone@v1")
    assert mlops.gc_snapshots().reclaimed_bytes >= first.bytes
    assert stored_objects() == set()
    again = mlops.snapshot(df, "gone")
    assert again.version == 2 and again.id == first.id
    assert again.bytes_written == first.bytes_written > 0
    assert_frame_equal(mlops.load("gone"), df)
    assert mlops.verify_snapshots().ok


def test_a_name_that_never_held_the_table_does_not_recall_it(counted: list[str]) -> None:
    df = frame()
    mlops.snapshot(df, "one")
    other = mlops.snapshot(df, "two")  # the store has the cells, but "two" never named them
    assert counted == ["table_content"] * 2 and other.bytes_written == 0


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["set", "null", "append", "drop", "string"]),
        st.integers(0, 10**6),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=EDITS, rows=st.integers(1, 1_500))
def test_random_edit_sequences_recall_exactly_what_a_fresh_save_computes(
    edits: list[tuple[str, int]], rows: int
) -> None:
    RECENT.clear()
    df = frame(rows, seed=rows)
    name = f"prop{rows}-{len(edits)}-{edits[0][1]}"
    ids = [mlops.snapshot(df, name).id]
    for kind, at in edits:
        row = at % len(df) if len(df) else 0
        if kind == "set" and len(df):
            df.iloc[row, 0] = float(at)
        elif kind == "null" and len(df):
            df.loc[df.index[row], "n"] = pd.NA
        elif kind == "string" and len(df):
            df.loc[df.index[row], "s"] = f"v{at}"
        elif kind == "append":
            df = pd.concat([df, frame(3, seed=at)], ignore_index=True)
        elif kind == "drop" and len(df) > 1:
            df = df.drop(index=df.index[row]).reset_index(drop=True)
        ids.append(mlops.snapshot(df, name).id)
        assert mlops.snapshot(df, name).reused  # the same frame again: recalled
    assert ids[-1] == fresh_id(df, name)
