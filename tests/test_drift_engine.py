"""The fast drift engine against plain per-column scipy computations, and its edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jupyter_mlops import MLOpsUsageError
from jupyter_mlops.drift import compute_drift
from tests.drift_reference import column_drift, frame_drift

# column -> is it numerical for Evidently (floats; ints with more than 10 distinct values)
NUMERICAL = {
    "f_same": True,
    "f_shift": True,
    "f_skew": True,
    "f_nan": True,
    "f_wide": True,
    "i_many": True,
    "f_discrete": True,
    "f_binary": True,
    "i_levels": False,
    "s_city": False,
    "s_pair": False,
    "b_flag": False,
    "c_tier": False,
}
KINDS = {
    "f_same": "numerical",
    "f_discrete": "discrete",
    "f_binary": "binary",
    "i_levels": "categorical",
    "s_pair": "binary",
    "b_flag": "binary",
    "c_tier": "categorical",
}


def make(rows: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "f_same": rng.normal(0, 1, rows),
            "f_shift": rng.normal(shift, 1, rows),
            "f_skew": rng.exponential(1 + shift, rows),
            "f_nan": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(shift / 3, 1, rows)),
            "f_wide": np.where(
                rng.random(rows) < 0.01, np.inf, rng.uniform(0, 100 + 50 * shift, rows)
            ),
            "i_many": rng.integers(0, 300, rows),
            "f_discrete": rng.choice([1.0, 2.0, 3.0, 4.0], rows, p=_probs(4, shift)),
            "f_binary": rng.choice([0.0, 1.0], rows, p=_probs(2, shift)),
            "i_levels": rng.integers(0, 6, rows),
            "s_city": rng.choice(
                ["ams", "ber", "cph", "dub", "edi", "fra", "gva"], rows, p=_probs(7, shift)
            ),
            "s_pair": rng.choice(["no", "yes"], rows, p=_probs(2, shift)),
            "b_flag": rng.random(rows) < 0.5 + shift / 5,
            "c_tier": pd.Categorical(
                rng.choice(["gold", "silver", "bronze"], rows, p=_probs(3, shift))
            ),
        }
    )


def _probs(k: int, shift: float) -> list[float]:
    raw = np.linspace(1, 1 + 2 * shift, k)
    return list(raw / raw.sum())


CASES = [
    pytest.param(3000, 3000, 0.0, id="large-same"),
    pytest.param(3000, 2000, 0.4, id="large-shifted-uneven"),
    pytest.param(1001, 1500, 0.15, id="just-above-1000"),
    pytest.param(1000, 1000, 0.15, id="exactly-1000"),
    pytest.param(400, 700, 0.0, id="small-same"),
    pytest.param(300, 300, 0.6, id="small-shifted"),
]


@pytest.mark.parametrize(("n_ref", "n_cur", "shift"), CASES)
def test_default_tests_match_scipy_per_column(n_ref: int, n_cur: int, shift: float) -> None:
    reference, current = make(n_ref, 1, 0.0), make(n_cur, 2, shift)
    result = compute_drift(reference, current)
    expected = frame_drift(reference, current, NUMERICAL)
    assert [r.column for r in result.results] == list(NUMERICAL)
    for r in result.results:
        test, value, drifted = expected[r.column]
        assert r.test == test, r.column
        assert r.statistic == pytest.approx(value, rel=1e-9, abs=1e-12), r.column
        assert r.drifted == drifted, r.column
    assert result.share_drifted == sum(v[2] for v in expected.values()) / len(expected)
    assert result.drifted == (result.share_drifted >= 0.5)


def test_regimes_and_kinds() -> None:
    large = compute_drift(make(2000, 3, 0.0), make(2000, 4, 0.0))
    small = compute_drift(make(500, 3, 0.0), make(500, 4, 0.0))
    tests = {r.column: r.test for r in large.results}
    assert tests["f_same"] == "wasserstein" and tests["f_discrete"] == "jensenshannon"
    assert tests["f_binary"] == "jensenshannon" and tests["s_city"] == "jensenshannon"
    tests = {r.column: r.test for r in small.results}
    assert tests["f_same"] == "ks" and tests["f_discrete"] == "chisquare"
    assert tests["f_binary"] == "z" and tests["s_pair"] == "z" and tests["b_flag"] == "z"
    assert tests["s_city"] == "chisquare" and tests["i_levels"] == "chisquare"
    kinds = {r.column: r.kind for r in small.results}
    assert {c: kinds[c] for c in KINDS} == KINDS
    # 1000 reference rows, but NaNs leave a column with fewer values: that column uses K-S
    reference = make(1100, 5, 0.0)
    mixed = {r.column: r.test for r in compute_drift(reference, make(1100, 6, 0.0)).results}
    assert reference["f_nan"].notna().sum() <= 1000 and mixed["f_nan"] == "ks"
    assert mixed["f_same"] == "wasserstein"


@pytest.mark.parametrize("method", ["psi", "kl_div", "jensenshannon"])
def test_binned_methods_match_scipy(method: str) -> None:
    reference, current = make(2500, 7, 0.0), make(2000, 8, 0.3)
    result = compute_drift(reference, current, method=method)
    expected = frame_drift(reference, current, NUMERICAL, method)
    for r in result.results:
        assert r.test == method
        assert r.statistic == pytest.approx(expected[r.column][1], rel=1e-9), r.column
        assert r.drifted == expected[r.column][2], r.column


def test_ks_on_large_data_and_per_column_choices() -> None:
    reference, current = make(3000, 9, 0.0), make(3000, 10, 0.08)
    result = compute_drift(
        reference,
        current,
        method="psi",
        per_column_method={"f_shift": "ks", "s_city": "chisquare"},
        per_column_threshold={"f_same": 0.001},
    )
    assert result.column("f_shift").test == "ks"
    assert result.column("f_shift").statistic == pytest.approx(
        stats.ks_2samp(reference["f_shift"], current["f_shift"]).pvalue, rel=1e-12
    )
    assert result.column("s_city").test == "chisquare"
    assert result.column("f_same").threshold == 0.001 and result.column("f_skew").test == "psi"


def test_wasserstein_matches_scipy_on_ties_and_uneven_sizes() -> None:
    rng = np.random.default_rng(11)
    for n, m in [(1500, 1500), (1200, 3100), (5000, 1001)]:
        ref = pd.DataFrame({"x": rng.integers(0, 40, n) * 0.5})
        cur = pd.DataFrame({"x": rng.integers(3, 45, m) * 0.5})
        value = compute_drift(ref, cur).column("x").statistic
        expected = stats.wasserstein_distance(ref["x"], cur["x"]) / np.std(ref["x"])
        assert value == pytest.approx(expected, rel=1e-10)


def test_psi_kl_hellinger_by_hand() -> None:
    reference = pd.DataFrame({"g": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    current = pd.DataFrame({"g": ["a"] * 40 + ["b"] * 30 + ["c"] * 30})
    psi = compute_drift(reference, current, method="psi").column("g").statistic
    assert psi == pytest.approx(0.1 * math.log(0.5 / 0.4) + (-0.1) * math.log(0.2 / 0.3), rel=1e-12)
    kl = compute_drift(reference, current, method="kl_div").column("g").statistic
    assert kl == pytest.approx(0.5 * math.log(0.5 / 0.4) + 0.2 * math.log(0.2 / 0.3), rel=1e-12)
    hellinger = compute_drift(reference, current, method="hellinger").column("g").statistic
    overlap = math.sqrt(0.5 * 0.4) + 0.3 + math.sqrt(0.2 * 0.3)
    assert hellinger == pytest.approx(math.sqrt(1 - overlap), rel=1e-12)
    # a value absent from the reference: its share is filled with 0.0001 (Evidently's smoothing)
    reference = pd.DataFrame({"g": ["a"] * 50 + ["b"] * 50})
    current = pd.DataFrame({"g": ["a"] * 50 + ["b"] * 40 + ["d"] * 10})
    psi = compute_drift(reference, current, method="psi").column("g")
    assert psi.statistic == pytest.approx(
        0.1 * math.log(0.5 / 0.4) + (0.0001 - 0.1) * math.log(0.0001 / 0.1), rel=1e-12
    )
    assert psi.drifted and psi.threshold == 0.1


def test_hellinger_numerical_uses_density_histograms() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, 2.0, 3.0]})
    cur = pd.DataFrame({"x": [2.0, 3.0, 3.0, 4.0]})
    # Sturges edges over the 4 distinct values: 3 bins of width 1 on [1, 4]
    # ref density [0.25, 0.5, 0.25], cur [0, 0.25, 0.75] (3 and 4 share the closed last bin)
    expected = math.sqrt(1 - (math.sqrt(0.5 * 0.25) + math.sqrt(0.25 * 0.75)))
    value = compute_drift(ref, cur, method="hellinger").column("x").statistic
    assert value == pytest.approx(expected, rel=1e-12)


def test_z_test_constant_and_binary() -> None:
    same = compute_drift(pd.DataFrame({"s": ["a"] * 20}), pd.DataFrame({"s": ["a"] * 30}))
    assert same.column("s").test == "z" and same.column("s").statistic == 1.0
    ref, cur = pd.Series(["a"] * 70 + ["b"] * 30), pd.Series(["a"] * 50 + ["b"] * 50)
    result = compute_drift(ref.to_frame("s"), cur.to_frame("s")).column("s")
    assert result.statistic == pytest.approx(column_drift(ref, cur, numerical=False)[1], rel=1e-12)
    assert result.drifted  # 30% -> 50% on 100 rows: p ~ 0.004


def test_nan_inf_and_empty_columns_are_handled() -> None:
    reference = pd.DataFrame(
        {"x": [np.nan] * 20, "y": [1.0, np.inf, 3.0, 4.0] * 5, "s": ["a", None] * 10}
    )
    current = pd.DataFrame(
        {"x": [1.0] * 20, "y": [1.0, 2.0, -np.inf, 4.0] * 5, "s": ["b", np.nan] * 10}
    )
    result = compute_drift(reference, current)
    assert [r.column for r in result.results] == ["y", "s"]
    assert result.broken == (("x", "all values missing in the reference data"),)
    assert result.skipped == ()
    assert result.column("s").statistic < 0.05  # a vs b, NaNs dropped
    assert "BROKEN: x (all values missing in the reference data)" in repr(result)


def test_all_missing_and_retyped_columns_are_broken_data_not_quiet_skips() -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame(
        {
            "age": rng.normal(40, 5, 2000),
            "income": rng.normal(3000, 300, 2000),
            "zip": rng.integers(1000, 9999, 2000),
            "city": rng.choice(["a", "b", "c"], 2000),
            "when": pd.date_range("2024-01-01", periods=2000, freq="h"),
        }
    )
    current = reference.copy()
    current["income"] = np.nan  # an upstream join lost the column
    current["zip"] = current["zip"].astype(str)  # a schema change: numbers became strings
    current["when"] = current["when"].astype(str)
    result = compute_drift(reference, current)
    assert [r.column for r in result.results] == ["age", "city"]
    assert dict(result.broken) == {
        "income": "all values missing in the current data",
        "zip": "type changed: numbers in the reference, strings in the current data",
        "when": "type changed: datetimes in the reference, strings in the current data",
    }
    assert not result.drifted and result.n_broken == 3
    assert result.summary().startswith("DATA BROKEN: 3 columns (income, zip, when); ")
    assert repr(result).splitlines()[0].startswith("DriftResult: DATA BROKEN")
    assert result.to_dict()["n_broken"] == 3
    # named explicitly, a broken column is still reported as broken, not refused
    only = compute_drift(reference, current, columns=["income"])
    assert only.results == () and only.broken == (("income", result.broken[0][1]),)
    # nullable and int -> float columns are the same kind of values: not broken
    same = reference.assign(age=reference["age"].astype("Float64"), zip=reference["zip"] * 1.0)
    assert compute_drift(reference, same).broken == ()


def test_text_and_untestable_columns_are_skipped_or_refused() -> None:
    reference = pd.DataFrame({"id": [f"r{i}" for i in range(50)], "v": np.arange(50.0)})
    current = pd.DataFrame({"id": [f"c{i}" for i in range(50)], "v": np.arange(50.0)})
    result = compute_drift(reference, current)
    assert [r.column for r in result.results] == ["v"]
    assert result.skipped[0][0] == "id" and "text" in result.skipped[0][1]
    with pytest.raises(MLOpsUsageError, match="cannot test column 'id'"):
        compute_drift(reference, current, columns=["id"])


def test_usage_errors_are_one_line_and_say_what_to_do() -> None:
    reference = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]})
    current = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(MLOpsUsageError, match=r"'b' \(not in the current data\).*--columns"):
        compute_drift(reference, current)
    assert compute_drift(reference, current, columns=["a"]).share_drifted == 0.0
    mismatch = pd.DataFrame({"a": ["1", "2", "3"]})  # a changed type is broken data, not misuse
    assert compute_drift(mismatch, current).broken == (
        ("a", "type changed: strings in the reference, numbers in the current data"),
    )
    with pytest.raises(
        MLOpsUsageError, match="numerical in the current data but object in the reference"
    ):
        compute_drift(pd.DataFrame({"a": pd.Series([1, 2, 3], dtype=object)}), current)
    with pytest.raises(MLOpsUsageError, match="unknown drift test 'wass'"):
        compute_drift(current, current, method="wass")
    with pytest.raises(
        MLOpsUsageError, match="applies to numerical columns, but 'b' is categorical"
    ):
        categories = pd.DataFrame({"b": ["x", "x", "y", "y"]})
        compute_drift(categories, categories, per_column_method={"b": "wasserstein"})
    with pytest.raises(MLOpsUsageError, match="unknown columns: nope"):
        compute_drift(current, current, per_column_threshold={"nope": 0.2})
    with pytest.raises(MLOpsUsageError, match="not a pandas DataFrame"):
        compute_drift([1, 2], current)
    with pytest.raises(MLOpsUsageError, match="unknown drift engine"):
        compute_drift(current, current, engine="spark")
    for error in (MLOpsUsageError,):
        with pytest.raises(error) as caught:
            compute_drift(current, current, columns=["zz"])
        assert "\n" not in str(caught.value)


def test_evidently_engine_explains_how_to_install_it() -> None:
    # The main environment runs pandas 3, under which evidently 0.7 cannot be imported.
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(MLOpsUsageError) as caught:
        compute_drift(frame, frame, engine="evidently")
    message = str(caught.value)
    assert 'pip install "jupyter-mlops[evidently]"' in message and "pandas<3" in message
    assert "\n" not in message


def test_sampling_is_opt_in_seeded_and_reported() -> None:
    reference, current = make(5000, 12, 0.0), make(5000, 13, 0.2)
    first = compute_drift(reference, current, sample=1500)
    again = compute_drift(reference, current, sample=1500)
    assert first.sample == 1500 and first.reference.rows == 5000
    assert [r.statistic for r in first.results] == [r.statistic for r in again.results]
    assert "sample: 1,500 rows per side" in repr(first)
    assert compute_drift(reference, current).sample is None


def test_result_forms_are_deterministic() -> None:
    reference, current = make(1500, 14, 0.0), make(1500, 15, 0.5)
    first, second = compute_drift(reference, current), compute_drift(reference, current)
    assert repr(first) == repr(second)
    lines = repr(first).splitlines()
    assert lines[0].startswith("DriftResult: ") and lines[2].split()[:3] == [
        "column",
        "kind",
        "test",
    ]
    table = first.columns
    assert list(table.columns) == ["column", "kind", "test", "statistic", "threshold", "drifted"]
    assert table["drifted"].sum() == first.n_drifted
    data = first.to_dict()
    assert data["share_drifted"] == first.share_drifted and len(data["columns"]) == len(table)
    assert data["columns"][0] == {k: table.iloc[0][k] for k in table.columns}
    severity = [r.column for r in first.by_severity()]
    assert all(first.column(c).drifted for c in severity[: first.n_drifted])


@pytest.mark.parametrize(
    ("dataset", "rows"),
    [("digits", 1200), ("breast_cancer", 300), ("diabetes", 250)],
)
def test_real_datasets_match_scipy(dataset: str, rows: int) -> None:
    """Datasets bundled with scikit-learn (nothing downloaded), split into two periods."""
    from sklearn import datasets

    frame = getattr(datasets, f"load_{dataset}")(as_frame=True).frame
    reference, current = frame.iloc[:rows], frame.iloc[rows:]
    numerical = {c: frame[c].dtype.kind == "f" or current[c].nunique() > 10 for c in frame.columns}
    result = compute_drift(reference, current)
    expected = frame_drift(reference, current, numerical)
    assert len(result.results) == frame.shape[1]
    for r in result.results:
        test, value, drifted = expected[r.column]
        assert (r.test, r.drifted) == (test, drifted), r.column
        assert r.statistic == pytest.approx(value, rel=1e-9, abs=1e-12), r.column
