"""Benchmark: ``mlops.snapshot`` / ``mlops.load`` against the whole-file ways of saving a frame.

Run: ``python tests/benchmarks/bench_snapshots.py`` (1M rows) or ``--rows 10000000`` (the issue's
~900 MiB frame). Prints one table: ours, the peer, and the ratio, for the issue's targets.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.feather as feather


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """12 mixed columns like the note's test frame (about 89 bytes per row)."""
    rng = np.random.default_rng(seed)
    nullable = pd.array(rng.integers(0, 1_000, rows), dtype="Int64")
    nullable[rng.random(rows) < 0.05] = pd.NA
    return pd.DataFrame(
        {
            "f1": rng.random(rows),
            "f2": rng.normal(size=rows),
            "f3": np.round(rng.normal(size=rows), 2),
            "f4": rng.exponential(size=rows),
            "i1": rng.integers(0, 10**9, rows),
            "i2": np.arange(rows, dtype=np.int64),
            "i3": rng.integers(0, 1000, rows, dtype=np.int32),
            "n": nullable,
            "cat": pd.Categorical.from_codes(
                rng.integers(0, 100, rows), [f"c{i}" for i in range(100)]
            ),
            "user": pd.Series(rng.integers(0, 2_000_000, rows)).map("user_{:09d}".format),
            "ts": pd.date_range("2024-01-01", periods=rows, freq="s", tz="Europe/Berlin"),
            "flag": rng.random(rows) < 0.5,
        }
    )


class PeakRss:
    """Peak resident memory above the starting point, sampled every 5 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> PeakRss:
        self.base = self.rss()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss() - self.base)
            time.sleep(0.005)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.rss() - self.base)


def best_of(n: int, func: Callable[[], Any]) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(n):
        start = time.perf_counter()
        value = func()
        best = min(best, time.perf_counter() - start)
    return best, value


def md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-snapshots-"))
    os.chdir(work)
    import jupyter_mlops as mlops

    df = make_frame(args.rows)
    size = int(df.memory_usage(deep=True).sum())
    gib = size / 2**30
    print(f"frame: {args.rows:,} rows x {df.shape[1]} columns, {size / 2**20:.0f} MiB in pandas")

    parquet = work / "frame.parquet"
    t_parquet, _ = best_of(args.repeat, lambda: df.to_parquet(parquet))
    t_parquet_md5, _ = best_of(args.repeat, lambda: (df.to_parquet(parquet), md5_file(parquet)))
    parquet_bytes = parquet.stat().st_size

    counter = iter(range(1_000_000))
    firsts = []
    with PeakRss() as mem:
        for _ in range(args.repeat):
            name = f"first{next(counter)}"
            # A fresh store each time, so every cell is really written.
            os.environ["MLOPS_SNAPSHOT_STORE"] = str(work / f"store-{name}")
            start = time.perf_counter()
            snap = mlops.snapshot(df, name)
            firsts.append((time.perf_counter() - start, snap))
    t_first, first = min(firsts, key=lambda pair: pair[0])
    os.environ["MLOPS_SNAPSHOT_STORE"] = str(work / f"store-{first.name}")
    t_again, again = best_of(args.repeat, lambda: mlops.snapshot(df, first.name))

    appended = pd.concat([df, make_frame(args.rows // 100, seed=1)], ignore_index=True)
    appended["i2"] = np.arange(len(appended), dtype=np.int64)
    start = time.perf_counter()
    grown = mlops.snapshot(appended, first.name)
    t_append = time.perf_counter() - start

    feather_lz4 = work / "frame.lz4.feather"
    feather_zstd = work / "frame.zstd.feather"
    df.to_feather(feather_lz4)
    df.to_feather(feather_zstd, compression="zstd")
    t_feather, _ = best_of(args.repeat, lambda: feather.read_feather(feather_lz4))
    t_feather_zstd, _ = best_of(args.repeat, lambda: feather.read_feather(feather_zstd))
    t_load, restored = best_of(args.repeat, lambda: mlops.load(first.ref))
    pd.testing.assert_frame_equal(restored, df)

    rows = [
        ("first snapshot (s)", t_first, "df.to_parquet()", t_parquet, "<= 1.5"),
        ("first snapshot (s)", t_first, "to_parquet + md5", t_parquet_md5, "< 1"),
        (
            "unchanged re-snapshot (s/GiB)",
            t_again / gib,
            "target 0.5 s/GiB",
            0.5,
            "<= 1",
        ),
        (
            "unchanged: bytes written",
            again.bytes_written,
            "whole-file tools",
            parquet_bytes,
            "0",
        ),
        (
            "1% append: bytes written",
            grown.bytes_written,
            "first snapshot's bytes",
            first.bytes_written,
            "<= 0.10",
        ),
        ("restore + verify (s)", t_load, "read_feather lz4", t_feather, "<= 1.5"),
        ("restore + verify (s)", t_load, "read_feather zstd", t_feather_zstd, "<= 1.5"),
        ("peak memory (bytes)", mem.peak, "frame in pandas", size, "<= 1.5"),
    ]
    print(f"{'measure':<31} {'ours':>12}   {'peer':<24} {'peer value':>12} {'ratio':>7}  target")
    for label, ours, peer, theirs, target in rows:
        ratio = ours / theirs if theirs else float("nan")
        print(
            f"{label:<31} {_fmt(ours):>12}   {peer:<24} {_fmt(theirs):>12} {ratio:>7.2f}  {target}"
        )
    print(f"(1% append took {t_append:.2f} s; store objects are zstd Arrow IPC cells)")
    print(f"work folder: {work}", file=sys.stderr)


def _fmt(value: float) -> str:
    if isinstance(value, int) or (float(value).is_integer() and value > 1000):
        return f"{int(value):,}"
    return f"{value:.3f}"


if __name__ == "__main__":
    main()
