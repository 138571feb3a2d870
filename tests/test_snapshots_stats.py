"""The per-column stats a manifest records (for list and diff) are pandas' own numbers.

A frame held in memory has its stats computed once its cells are cut, one call per column; a
streamed source has them computed batch by batch as it is read. Both give the same numbers, and
the vectorised paths (NumPy for float extremes, byte lengths for ASCII strings) give the same
numbers as the general ones: NaN skipped, lengths counted in characters.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.snapshots import service
from jupyter_mlops.snapshots.frames import to_arrow
from jupyter_mlops.snapshots.stats import column_stats

sources_module = importlib.import_module("jupyter_mlops.snapshots.sources")


def frame(rows: int = 6_000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    x[rng.random(rows) < 0.05] = np.nan
    x[17] = -1e30  # extremes far from the rest, in one batch
    x[4_321] = 1e30
    n = pd.array(rng.integers(-50, 50, rows), dtype="Int64")
    n[rng.random(rows) < 0.1] = pd.NA
    words = np.array(["a", "straße", "日本語テキスト", "", "plain ascii words"])
    return pd.DataFrame(
        {
            "x": x,
            "f32": rng.random(rows).astype(np.float32),
            "i": rng.integers(-(10**12), 10**12, rows),
            "n": n,
            "ascii": [f"user_{v:0{v % 7 + 1}d}" for v in rng.integers(0, 10**6, rows)],
            "text": words[rng.integers(0, len(words), rows)],
        }
    )


def stats_of(snap: mlops.Snapshot) -> dict[str, dict[str, Any]]:
    manifest = service.open_store(current_settings()).manifest(snap.id)
    return {c["name"]: c["stats"] for c in manifest["columns"]}


def expected(df: pd.DataFrame) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, series in df.items():
        nulls = int(series.isna().sum())
        if series.dtype == object or pd.api.types.is_string_dtype(series):
            lengths = series.str.len()
            out[str(name)] = {"nulls": nulls, "min_len": lengths.min(), "max_len": lengths.max()}
            continue
        values = series.dropna().astype(float)
        out[str(name)] = {
            "nulls": nulls,
            "min": values.min(),
            "max": values.max(),
            "mean": values.mean(),
            "std": values.std(ddof=0),
        }
    return out


def test_stats_of_a_frame_are_pandas_numbers_with_nan_skipped_and_lengths_in_characters() -> None:
    df = frame()
    stats = stats_of(mlops.snapshot(df, "numbers"))
    want = expected(df)
    # NaN counts as a null in pandas; Arrow keeps it as a value (and skips it in min/max).
    nan_rows = int(np.isnan(df["x"]).sum())
    assert nan_rows > 0 and stats["x"]["nulls"] == 0
    assert stats["x"]["min"] == -1e30 and stats["x"]["max"] == 1e30
    assert stats["x"]["mean"] is None  # NaN poisons the mean, as in Arrow
    for name in ["f32", "i", "n"]:
        assert stats[name] == pytest.approx(want[name], rel=1e-6), name
    for name in ["ascii", "text"]:
        assert stats[name] == want[name], name
    assert stats["text"]["max_len"] == 17 and stats["text"]["min_len"] == 0  # not UTF-8 bytes


def test_stats_of_a_streamed_source_equal_those_of_the_frame_held_in_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    df = frame()
    path = tmp_path / "numbers.parquet"
    table, _ = to_arrow(df)  # NaN stays a value (df.to_parquet would write it as a null)
    pq.write_table(table, path)
    monkeypatch.setattr(sources_module, "BATCH_ROWS", 500)  # 12 batches, stats per batch
    streamed = stats_of(mlops.snapshot(str(path), "streamed"))
    held = stats_of(mlops.snapshot(df, "held"))
    assert streamed.keys() == held.keys() and held["x"]["mean"] is None
    for name in held:
        assert streamed[name].keys() == held[name].keys(), name
        for key, value in held[name].items():
            if value is None:
                assert streamed[name][key] is None, (name, key)
            else:
                assert streamed[name][key] == pytest.approx(value, rel=1e-9), (name, key)


@pytest.mark.parametrize(
    "values",
    [
        pa.chunked_array([[1.5, float("nan")], [-7.0, 2.5]]),
        pa.chunked_array([[float("nan"), float("nan")]]),
        pa.chunked_array([[None, 2.0, float("nan")]]),
        pa.chunked_array([pa.array([0.25, -3.5], pa.float32())]),
        pa.chunked_array([pa.array(["x", "ünï", None, ""]).slice(1)]),
        pa.chunked_array([pa.array(["ab", "abcd", None], pa.large_string())]),
    ],
)
def test_vectorised_stats_equal_arrow_compute_on_odd_chunks(values: pa.ChunkedArray) -> None:
    import pyarrow.compute as pc

    stats = column_stats(values)
    if pa.types.is_floating(values.type):
        extremes = {k: v.as_py() for k, v in pc.min_max(values).items()}
        for key in ["min", "max"]:
            want = None if extremes[key] is None or np.isnan(extremes[key]) else extremes[key]
            assert stats.get(key) == want, key
    else:
        lengths = pc.min_max(pc.utf8_length(values))
        assert (stats["min_len"], stats["max_len"]) == (
            lengths["min"].as_py(),
            lengths["max"].as_py(),
        )
