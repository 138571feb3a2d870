"""Benchmark: our ``fast`` drift engine against Evidently 0.7 (or, without it, a scipy loop).

Run: ``python tests/benchmarks/bench_drift.py`` (200k rows x 25 columns) or ``--rows 1000000``
(the issue's size). The data is the note's: 20 float and 5 categorical columns (8 levels), 5 float
and 1 categorical column shifted. The peer is Evidently's DataDriftPreset when evidently imports
in this environment (it needs pandas<3; run this script there with this tree on PYTHONPATH),
otherwise the plain per-column pandas/scipy loop of ``tests/drift_reference.py``. Each side runs in
its own process so that peak RSS is its own; the table shows wall time, peak RSS and the ratios.
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

NUMERIC, CATEGORICAL = 20, 5
CONFIGS = {
    "default": {},
    "ks+chisquare": {"per_column": {"num": "ks", "cat": "chisquare"}},
    "psi": {"method": "psi"},
}


def frames(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    levels = np.array([f"level_{i}" for i in range(8)], dtype=object)

    def side(shifted: bool) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for i in range(NUMERIC):
            data[f"num_{i:02d}"] = rng.normal(0.3 if shifted and i < 5 else 0.0, 1.0, rows)
        for i in range(CATEGORICAL):
            p = np.linspace(1, 3 if shifted and i == 0 else 1, 8)
            data[f"cat_{i}"] = levels[rng.choice(8, rows, p=p / p.sum())]
        return pd.DataFrame(data)

    return side(False), side(True)


def methods(config: str, columns: list[str]) -> dict[str, str]:
    per = CONFIGS[config].get("per_column", {})
    return {c: per["num" if c.startswith("num") else "cat"] for c in columns} if per else {}


def peer_name() -> str:
    try:
        import evidently.presets  # noqa: F401
    except Exception:
        return "scipy-loop"
    return "evidently"


def run_side(side: str, rows: int, config: str) -> dict[str, Any]:
    reference, current = frames(rows)
    method = CONFIGS[config].get("method")
    per_column = methods(config, list(reference.columns))
    import scipy.spatial.distance
    import scipy.stats  # noqa: F401  imports are not timed (the notes timed Report.run() only)

    if side == "evidently":
        import evidently.presets  # noqa: F401
    started = time.perf_counter()
    if side == "fast":
        from jupyter_mlops.drift import compute_drift

        result = compute_drift(reference, current, method=method, per_column_method=per_column)
        verdicts = {r.column: r.drifted for r in result.results}
    elif side == "evidently":
        from evidently import Report
        from evidently.presets import DataDriftPreset

        preset = DataDriftPreset(method=method, per_column_method=per_column or None)
        report = Report([preset], include_tests=True).run(current, reference).dict()
        verdicts = {}
        for test in report["tests"]:
            column = test.get("metric_config", {}).get("params", {}).get("column")
            if column is not None:
                verdicts[column] = test["status"] == "FAIL"
    else:
        from tests.drift_reference import frame_drift

        numerical = {c: c.startswith("num") for c in reference.columns}
        scores = frame_drift(reference, current, numerical, method, per_column)
        verdicts = {c: v[2] for c, v in scores.items()}
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb, "verdicts": verdicts}


def in_child(side: str, rows: int, config: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", side, "--rows", str(rows), "--config", config],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows per side (full: 1000000)")
    parser.add_argument("--config", choices=list(CONFIGS), action="append")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_side(args.child, args.rows, args.config[0])))
        return
    peer = peer_name()
    print(
        f"drift, {args.rows:,} rows x {NUMERIC + CATEGORICAL} columns per side "
        f"({NUMERIC} float, {CATEGORICAL} categorical); peer: {peer}; "
        f"python {sys.version.split()[0]}, pandas {pd.__version__}"
    )
    header = (
        f"{'tests':<14}{'fast s':>9}{peer + ' s':>15}{'speed-up':>10}"
        f"{'fast MB':>9}{peer + ' MB':>16}{'same verdicts':>15}"
    )
    print(header)
    print("-" * len(header))
    for config in args.config or list(CONFIGS):
        ours = in_child("fast", args.rows, config)
        theirs = in_child(peer, args.rows, config)
        same = ours["verdicts"] == theirs["verdicts"]
        print(
            f"{config:<14}{ours['seconds']:>9.2f}{theirs['seconds']:>15.2f}"
            f"{theirs['seconds'] / ours['seconds']:>9.1f}x"
            f"{ours['peak_mb']:>9.0f}{theirs['peak_mb']:>16.0f}"
            f"{'yes' if same else 'NO':>15}"
        )


if __name__ == "__main__":
    main()
