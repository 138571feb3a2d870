"""A save that reuses stored cells: what it still asks the store, and the stats it records.

Cells a live version of the name already references are neither asked for nor touched, and their
stats are put off until a new manifest needs them; on S3 new cells are written blind (one
conditional PUT each) and a cell that was already there counts as reused, not written.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.snapshots import service
from jupyter_mlops.snapshots.stats import ColumnStats
from jupyter_mlops.snapshots.store import LocalBackend
from tests.store_files import STORE, object_location

save_module = importlib.import_module("jupyter_mlops.snapshots.save")
cells_module = importlib.import_module("jupyter_mlops.snapshots.cells")


def frame(rows: int = 6_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    nullable = pd.array(rng.integers(0, 100, rows), dtype="Int64")
    nullable[rng.random(rows) < 0.1] = pd.NA
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "i": np.arange(rows, dtype=np.int64),
            "n": nullable,
            "s": [f"u{v}" for v in rng.integers(0, 500, rows)],
            "c": pd.Categorical.from_codes(rng.integers(0, 5, rows), list("abcde")),
            "t": pd.date_range("2024-01-01", periods=rows, freq="min", tz="UTC"),
            "b": rng.random(rows) < 0.3,
        }
    )


def save(df: pd.DataFrame, name: str) -> mlops.Snapshot:
    """A save in row chunks of about 500 rows, so these small frames have many cells."""
    settings = current_settings()
    store = service.open_store(settings)
    return save_module.save(
        store, df, name, stat_cache=service.stat_cache_path(settings), chunk_rows=500
    )


def manifest_of(snap: mlops.Snapshot) -> dict[str, Any]:
    return service.open_store(current_settings()).manifest(snap.id)


def edited(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.loc[100:160, "x"] = -1.5
    return out


@pytest.mark.parametrize("defer_bytes", [save_module.DEFER_BYTES, 0])
def test_stats_of_a_version_built_on_stored_cells_match_a_fresh_save(
    defer_bytes: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(save_module, "DEFER_BYTES", defer_bytes)
    df = frame()
    save(df, "stats")
    v2 = save(edited(df), "stats")
    assert 0 < v2.objects_written < v2.objects  # most cells were reused, their stats put off
    monkeypatch.setenv("MLOPS_SNAPSHOT_STORE", str(tmp_path / "fresh"))
    fresh = save(edited(df), "stats")
    assert fresh.id == v2.id and fresh.objects_written == fresh.objects
    computed = manifest_of(fresh)
    monkeypatch.delenv("MLOPS_SNAPSHOT_STORE")
    reused = manifest_of(v2)
    for ours, theirs in zip(reused["columns"], computed["columns"], strict=True):
        assert ours["stats"] == pytest.approx(theirs["stats"]), ours["name"]
    assert reused["objects"] == computed["objects"]
    # Bytes are what each store holds: a cell may be stored compressed in one and plain in the
    # other (see cells.Compression), so each manifest is checked against its own store's files.
    for manifest, root in [(reused, STORE), (computed, tmp_path / "fresh")]:
        cells = {c["name"]: c["cells"] for c in manifest["content"]["columns"]}
        for column in manifest["columns"]:
            stored = [object_location(i, root)[2] for i in cells[column["name"]]]
            assert column["bytes"] == sum(stored), column["name"]
        every = {i for ids in cells.values() for i in ids}
        assert manifest["bytes"] == sum(object_location(i, root)[2] for i in every)


def test_an_unchanged_resnapshot_asks_nothing_about_its_cells(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    df = frame()
    first = save(df, "same")
    asked: list[str] = []
    real_exists, real_touch = LocalBackend.exists, LocalBackend.touch

    def exists(self: LocalBackend, key: str) -> bool:
        asked.append(key)
        return real_exists(self, key)

    def touch(self: LocalBackend, key: str) -> None:
        asked.append(key)
        real_touch(self, key)

    monkeypatch.setattr(LocalBackend, "exists", exists)
    monkeypatch.setattr(LocalBackend, "touch", touch)
    # Nor does it encode a cell or compute a stat: its manifest is already stored.
    work: list[str] = []
    real_encode, real_add = cells_module.encode_cell, ColumnStats.add
    monkeypatch.setattr(
        cells_module, "encode_cell", lambda *a: work.append("encode") or real_encode(*a)
    )
    monkeypatch.setattr(
        ColumnStats, "add", lambda self, v: work.append("stats") or real_add(self, v)
    )
    again = save(df, "same")
    assert again.id == first.id and again.reused and again.bytes_written == 0
    assert not [k for k in asked if k.startswith("objects/")] and work == []
    # A new name knows no cells yet: it asks about each one (and still writes none).
    other = save(df, "other")
    assert other.bytes_written == 0
    assert len({k for k in asked if k.startswith("objects/")}) == first.objects
    assert_frame_equal(mlops.load("other"), df)


def test_a_missing_previous_manifest_falls_back_to_asking_the_store() -> None:
    df = frame(2_000)
    v1 = save(df, "lost")
    manifest = Path(".mlops/snapshots/manifests") / f"{v1.id}.json"
    manifest.chmod(0o644)
    manifest.unlink()
    v2 = save(df.assign(b=~df.b), "lost")
    assert 0 < v2.objects_written < v2.objects  # the unchanged columns' cells were found
    assert_frame_equal(mlops.load(v2.ref), df.assign(b=~df.b))


def test_s3_writes_new_cells_blind_and_counts_stored_ones_as_reused(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_SNAPSHOT_STORE", f"s3://{s3_bucket}/snapshots")
    df = frame(3_000)
    first = save(df, "one")
    assert first.objects_written == first.objects and first.bytes_written == first.bytes
    # Another name: no cell is known, each conditional PUT finds its cell stored.
    second = save(df, "two")
    assert (second.id, second.bytes_written, second.objects_written) == (first.id, 0, 0)
    third = save(edited(df), "three")
    assert 0 < third.objects_written < third.objects
    assert manifest_of(third)["bytes"] == third.bytes > third.bytes_written
    assert_frame_equal(mlops.load("two"), df)
    assert_frame_equal(mlops.load("three"), edited(df))
    assert mlops.verify_snapshots().ok
