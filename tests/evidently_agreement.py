"""Parity check: our ``fast`` drift engine against Evidently 0.7's DataDriftPreset itself.

Evidently 0.7 does not import under pandas 3, so this is a script for a separate environment,
not a pytest module of the main suite. It creates nothing; it needs evidently 0.7, pandas<3,
scipy, traitlets and this source tree on the path:

    python -m venv /tmp/ev
    /tmp/ev/bin/pip install "evidently==0.7.*" "pandas<3" scipy traitlets scikit-learn
    PYTHONPATH=. /tmp/ev/bin/python tests/evidently_agreement.py

For every case it compares, column by column, the score (to 1e-6), the test name and the verdict
(Evidently's own test status) and the dataset verdict, then does the same through our
``evidently`` engine. Exits 1 on any disagreement.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from jupyter_mlops.drift import compute_drift

TOLERANCE = 1e-6
EVIDENTLY_NAMES = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
    "Kullback-Leibler divergence": "kl_div",
    "Hellinger distance": "hellinger",
}


def frames(rows: int, seed: int, shift: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every column kind: floats (some shifted), low-cardinality ints, discrete and binary floats,
    strings, booleans, a pandas categorical, and missing values."""
    rng = np.random.default_rng(seed)

    def side(moved: float) -> pd.DataFrame:
        n = rows
        frame = pd.DataFrame(
            {
                "f_same": rng.normal(0, 1, n),
                "f_shift": rng.normal(moved, 1, n),
                "f_scale": rng.normal(0, 1 + moved, n),
                "f_skew": rng.exponential(1 + moved / 2, n),
                "f_nan": np.where(rng.random(n) < 0.1, np.nan, rng.normal(moved / 4, 1, n)),
                "f_int_wide": rng.integers(0, 1000 + int(200 * moved), n).astype(float),
                "i_big": rng.integers(0, 500, n),
                "i_levels": rng.integers(0, 6 + int(moved > 0), n),
                "f_discrete": rng.choice(
                    [0.5, 1.5, 2.5], n, p=[0.5, 0.3, 0.2] if moved == 0 else [0.3, 0.3, 0.4]
                ),
                "f_binary": rng.choice([0.0, 1.0], n, p=[0.7, 0.3] if moved == 0 else [0.6, 0.4]),
                "s_city": rng.choice(list("abcdefgh"), n, p=_weights(8, moved)),
                "s_rare": rng.choice(
                    ["x", "y", "z", "w"],
                    n,
                    p=[0.97, 0.01, 0.01, 0.01] if moved == 0 else [0.94, 0.02, 0.02, 0.02],
                ),
                "b_flag": rng.random(n) < (0.5 + moved / 10),
                "c_tier": pd.Categorical(rng.choice(["gold", "silver", "bronze"], n)),
            }
        )
        return frame

    return side(0.0), side(shift)


def _weights(k: int, moved: float) -> list[float]:
    raw = np.linspace(1, 1 + moved, k)
    return list(raw / raw.sum())


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame, **preset: Any) -> dict[str, Any]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    with warnings.catch_warnings():  # scipy's chisquare warns on categories new in current
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = Report([DataDriftPreset(**preset)], include_tests=True).run(current, reference)
    report = snapshot.dict()
    columns: dict[str, dict[str, Any]] = {}
    share = None
    for metric in report["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            share = metric["value"]["share"]
        elif config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "method": config["method"],
                "score": float(metric["value"]),
            }
    for test in report["tests"]:
        column = test.get("metric_config", {}).get("params", {}).get("column")
        if column in columns:
            columns[column]["drifted"] = test["status"] == "FAIL"
    return {"share": share, "columns": columns}


def compare(name: str, reference: pd.DataFrame, current: pd.DataFrame, **options: Any) -> list[str]:
    preset = {k: v for k, v in options.items() if k in ("method", "per_column_method", "threshold")}
    started = time.perf_counter()
    theirs = run_evidently(reference, current, **preset)
    evidently_s = time.perf_counter() - started
    started = time.perf_counter()
    ours = compute_drift(reference, current, **options)
    ours_s = time.perf_counter() - started
    problems = []
    for result in ours.results:
        other = theirs["columns"].get(result.column)
        if other is None:
            problems.append(f"{name}/{result.column}: evidently did not test it")
            continue
        method = EVIDENTLY_NAMES.get(other["method"], other["method"])
        if method != result.test:
            problems.append(f"{name}/{result.column}: test {result.test} vs evidently {method}")
        if not abs(result.statistic - other["score"]) <= TOLERANCE:
            problems.append(
                f"{name}/{result.column}: score {result.statistic!r} "
                f"vs evidently {other['score']!r}"
            )
        if "drifted" in other and other["drifted"] != result.drifted:
            problems.append(
                f"{name}/{result.column}: drifted {result.drifted} vs evidently {other['drifted']}"
            )
    missing = set(theirs["columns"]) - {r.column for r in ours.results}
    problems += [f"{name}/{c}: only evidently tested it" for c in sorted(missing)]
    if theirs["share"] is not None and abs(theirs["share"] - ours.share_drifted) > 1e-12:
        problems.append(f"{name}: share {ours.share_drifted} vs evidently {theirs['share']}")
    via_engine = compute_drift(reference, current, engine="evidently", **options)
    for mine, other in zip(ours.results, via_engine.results, strict=True):
        if (mine.test, mine.drifted) != (other.test, other.drifted) or abs(
            mine.statistic - other.statistic
        ) > TOLERANCE:
            problems.append(
                f"{name}/{mine.column}: engine 'evidently' gave {other.row()} vs fast {mine.row()}"
            )
    print(
        f"{name:<28} {len(ours.results):>3} columns  {ours.n_drifted:>3} drifted  "
        f"evidently {evidently_s:6.2f} s  fast {ours_s:6.3f} s  "
        f"{'MISMATCH' if problems else 'OK'}"
    )
    return problems


def real(
    name: str, split: Callable[[pd.DataFrame], pd.Series]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A dataset bundled with scikit-learn (nothing downloaded), split in two by ``split``."""
    from sklearn import datasets

    frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    mask = split(frame)
    return frame[mask].reset_index(drop=True), frame[~mask].reset_index(drop=True)


CASES: list[tuple[str, Callable[[], tuple[pd.DataFrame, pd.DataFrame]], dict[str, Any]]] = [
    ("large, no shift", lambda: frames(5000, 1, 0.0), {}),
    ("large, shifted", lambda: frames(5000, 2, 0.5), {}),
    ("large, uneven sizes", lambda: (frames(4000, 3, 0.0)[0], frames(2500, 4, 0.3)[1]), {}),
    ("small, no shift", lambda: frames(400, 5, 0.0), {}),
    ("small, shifted", lambda: frames(800, 6, 0.6), {}),
    ("boundary 1000 vs 1001", lambda: (frames(1000, 7, 0.0)[0], frames(1001, 8, 0.2)[1]), {}),
    ("1050 rows, NaNs: mixed regimes", lambda: frames(1050, 16, 0.2), {}),
    ("psi", lambda: frames(3000, 9, 0.3), {"method": "psi"}),
    ("kl_div", lambda: frames(3000, 10, 0.3), {"method": "kl_div"}),
    ("hellinger", lambda: frames(3000, 11, 0.3), {"method": "hellinger"}),
    ("jensenshannon everywhere", lambda: frames(3000, 12, 0.3), {"method": "jensenshannon"}),
    (
        "ks on large numerics",
        lambda: tuple(f.select_dtypes("float") for f in frames(3000, 13, 0.1)),
        {"method": "ks"},
    ),
    (
        "per-column methods",
        lambda: frames(2000, 14, 0.2),
        {"per_column_method": {"f_shift": "psi", "s_city": "chisquare", "f_same": "ks"}},
    ),
    ("threshold 0.05", lambda: frames(2000, 15, 0.1), {"threshold": 0.05}),
    ("real: digits, 1200 vs 597", lambda: real("digits", lambda f: f.index < 1200), {}),
    ("real: digits, psi", lambda: real("digits", lambda f: f.index < 1200), {"method": "psi"}),
    ("real: breast cancer by class", lambda: real("breast_cancer", lambda f: f.target == 1), {}),
    ("real: diabetes by sex", lambda: real("diabetes", lambda f: f.sex > 0), {}),
    ("real: wine by class", lambda: real("wine", lambda f: f.target == 0), {"method": "hellinger"}),
]


def main() -> int:
    import evidently

    print(f"evidently {evidently.__version__}, pandas {pd.__version__}, numpy {np.__version__}")
    problems: list[str] = []
    for name, make, options in CASES:
        reference, current = make()
        problems += compare(name, reference, current, **options)
    for problem in problems:
        print("  " + problem)
    print("agreement: OK" if not problems else f"agreement: {len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
