"""Benchmark: ``%monitor``'s per-window drift against Evidently 0.7 computing the same reports.

Run in the Evidently environment (pandas<3) with this tree on the path, so both sides use the same
libraries: ``PYTHONPATH=. .venv-evidently/bin/python tests/benchmarks/bench_monitoring.py``
(1,000,000 logged requests x 20 features in 24 hourly windows, 100,000 reference rows; smaller
with ``--rows``). The features are 16 float and 4 categorical columns; windows 7 and 17 are shifted
(10 float columns and one category). Each side runs in its own process so that its peak RSS is its
own, on the same data: ours is the monitor's whole window computation (feature drift, data quality,
volume), Evidently's is a DataDriftPreset report per window. The table gives wall time, peak RSS,
the ratio and whether every window's column and dataset verdicts are the same.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

NUMERIC, CATEGORICAL, WINDOWS = 16, 4, 24
SHIFTED = (7, 17)
START = pd.Timestamp("2026-11-30", tz="UTC")


def columns(rng: np.random.Generator, rows: int, shift: bool) -> dict[str, Any]:
    levels = np.array([f"level_{i}" for i in range(8)], dtype=object)
    data: dict[str, Any] = {}
    for i in range(NUMERIC):
        data[f"num_{i:02d}"] = rng.normal(0.5 if shift and i < 10 else 0.0, 1.0, rows)
    for i in range(CATEGORICAL):
        p = np.linspace(1, 4 if shift and i == 0 else 1, 8)
        data[f"cat_{i}"] = levels[rng.choice(8, rows, p=p / p.sum())]
    return data


def frames(rows: int, reference_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame(columns(rng, reference_rows, False))
    per_window = rows // WINDOWS
    parts = []
    for window in range(WINDOWS):
        part = pd.DataFrame(columns(rng, per_window, window in SHIFTED))
        seconds = np.sort(rng.uniform(0, 3600, per_window))
        part.insert(0, "timestamp", START + pd.to_timedelta(window * 3600 + seconds, unit="s"))
        part.insert(0, "request_id", [f"{window}-{i}" for i in range(per_window)])
        part.insert(2, "latency_ms", rng.uniform(1, 5, per_window))
        part.insert(3, "status", 200)
        parts.append(part)
    return reference, pd.concat(parts, ignore_index=True)


def run_side(side: str, rows: int, reference_rows: int) -> dict[str, Any]:
    reference, traffic = frames(rows, reference_rows)
    import scipy.spatial.distance
    import scipy.stats  # noqa: F401  imports are not timed

    if side == "evidently":
        import evidently.presets  # noqa: F401
    features = list(reference.columns)
    verdicts: dict[str, Any] = {}
    started = time.perf_counter()
    if side == "ours":
        from jupyter_mlops.monitoring.windows import Columns, compute_windows

        stats = compute_windows(
            traffic, reference, Columns(tuple(features), ()), pd.Timedelta("1h")
        )
        for start, report in stats.reports.items():
            columns_drifted = {r.column: bool(r.drifted) for r in report.results}
            verdicts[str(start)] = [bool(report.drifted), columns_drifted]
    else:
        from evidently import Report
        from evidently.presets import DataDriftPreset

        edges = pd.date_range(START, periods=WINDOWS + 1, freq="1h")
        stamps = traffic["timestamp"].to_numpy()
        bounds = np.searchsorted(stamps, edges.to_numpy())
        for index, start in enumerate(edges[:-1]):
            current = traffic.iloc[bounds[index] : bounds[index + 1]][features]
            report = Report([DataDriftPreset()], include_tests=True).run(current, reference).dict()
            columns_drifted: dict[str, bool] = {}
            dataset = False
            for test in report["tests"]:
                column = test.get("metric_config", {}).get("params", {}).get("column")
                if column is not None:
                    columns_drifted[column] = test["status"] == "FAIL"
                else:
                    dataset = dataset or test["status"] == "FAIL"
            share = sum(columns_drifted.values()) / len(columns_drifted)
            verdicts[str(start)] = [share >= 0.5, columns_drifted]
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb, "verdicts": verdicts}


def in_child(side: str, rows: int, reference_rows: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", side, "--rows", str(rows),
         "--reference-rows", str(reference_rows)],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="logged requests in all")
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_side(args.child, args.rows, args.reference_rows)))
        return
    print(
        f"monitor: {args.rows:,} logged requests x {NUMERIC + CATEGORICAL} features in "
        f"{WINDOWS} hourly windows, {args.reference_rows:,} reference rows; python "
        f"{sys.version.split()[0]}, pandas {pd.__version__}"
    )
    ours = in_child("ours", args.rows, args.reference_rows)
    theirs = in_child("evidently", args.rows, args.reference_rows)
    header = f"{'side':<12}{'seconds':>10}{'s/window':>10}{'peak MB':>10}"
    print(header)
    print("-" * len(header))
    for name, side in (("ours", ours), ("evidently", theirs)):
        print(
            f"{name:<12}{side['seconds']:>10.2f}{side['seconds'] / WINDOWS:>10.3f}"
            f"{side['peak_mb']:>10.0f}"
        )
    same = ours["verdicts"] == theirs["verdicts"]
    drifted = [w for w, (flag, _) in ours["verdicts"].items() if flag]
    print(
        f"speed-up {theirs['seconds'] / ours['seconds']:.1f}x; peak memory "
        f"{ours['peak_mb'] / theirs['peak_mb']:.2f} of Evidently's; same per-window verdicts "
        f"(dataset and every column): {same}; drifted windows: {', '.join(drifted) or 'none'}"
    )
    if not same:
        for window, verdict in ours["verdicts"].items():
            if verdict != theirs["verdicts"].get(window):
                other = theirs["verdicts"].get(window)
                print(f"  differs at {window}: ours {verdict} evidently {other}")
        sys.exit(1)


if __name__ == "__main__":
    main()
