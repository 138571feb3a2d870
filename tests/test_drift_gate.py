"""``--fail-on``: the small condition grammar, GateFailed, and warn mode."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import jupyter_mlops as mlops
from jupyter_mlops import GateFailed, MLOpsUsageError
from jupyter_mlops.drift import compute_drift
from jupyter_mlops.drift.gate import (
    Condition,
    DriftGateFailed,
    DriftGateWarning,
    failed_conditions,
    parse_fail_on,
)


def frames(shift: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({f"x{i}": rng.normal(0, 1, 2000) for i in range(4)})
    current = pd.DataFrame({f"x{i}": rng.normal(shift if i == 0 else 0, 1, 2000) for i in range(4)})
    current["my col"] = reference["my col"] = rng.normal(0, 1, 2000)
    return reference, current


def test_parses_conditions_and_separators() -> None:
    assert parse_fail_on("share_drifted > 0.3") == [Condition("share_drifted", False, ">", 0.3)]
    assert parse_fail_on("column:age>=2e-1, n_drifted != 0 or drifted==1") == [
        Condition("age", True, ">=", 0.2),
        Condition("n_drifted", False, "!=", 0.0),
        Condition("drifted", False, "==", 1.0),
    ]
    assert parse_fail_on('column:"my col" < .05')[0] == Condition("my col", True, "<", 0.05)
    assert str(parse_fail_on("column:age <= 1")[0]) == "column:age <= 1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "share_drifted",
        "share_drifted > ",
        "share_drifted >> 0.3",
        "share > 0.3",
        "share_drifted > 0.3 and n_drifted > 1",
        "share_drifted > 0.3,",
        "share_drifted > 0.3 share_drifted > 0.2",
        "__import__('os').system('touch hacked') > 0",
        "share_drifted > 1 + 1",
        "column: > 0.1",
    ],
)
def test_malformed_conditions_are_usage_errors(text: str, tmp_path: object) -> None:
    with pytest.raises(MLOpsUsageError) as caught:
        parse_fail_on(text)
    assert "share_drifted > 0.3" in str(caught.value) or "expected ','" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_nothing_is_evaluated(tmp_path: object) -> None:
    reference, current = frames()
    result = compute_drift(reference, current)
    with pytest.raises(MLOpsUsageError):
        failed_conditions(result, parse_fail_on("__import__('os').system('touch hacked') > 0"))
    import os

    assert not os.path.exists("hacked")


def test_conditions_read_dataset_and_column_values() -> None:
    reference, current = frames()
    result = compute_drift(reference, current)
    assert result.n_drifted == 1 and result.share_drifted == pytest.approx(0.2)
    assert failed_conditions(result, parse_fail_on("share_drifted > 0.3")) == []
    failures = failed_conditions(result, parse_fail_on("share_drifted >= 0.2, column:x0 > 0.5"))
    assert failures[0] == "share_drifted >= 0.2 (observed 0.2)"
    observed = result.column("x0").statistic
    assert failures[1] == f"column:x0 > 0.5 (observed {observed:.6g})" and observed > 0.5
    assert failed_conditions(result, parse_fail_on('column:"my col" > 0.5, drifted == 1')) == []
    with pytest.raises(MLOpsUsageError, match="names column 'age', which was not tested"):
        failed_conditions(result, parse_fail_on("column:age > 0.1"))


def test_broken_columns_fail_the_gate() -> None:
    reference, current = frames()
    current = current.assign(x1=np.nan, x2=current["x2"].astype(str))
    assert parse_fail_on("broken_columns > 0") == [Condition("broken_columns", False, ">", 0.0)]
    with pytest.raises(DriftGateFailed) as caught:
        mlops.drift(reference, current, fail_on="broken_columns > 0")
    assert caught.value.failures == ["broken_columns > 0 (observed 2)"]
    assert caught.value.result.summary().startswith("DATA BROKEN: 2 columns (x1, x2); ")
    failures = failed_conditions(caught.value.result, parse_fail_on("column:x1 > 0.1"))
    assert failures == [
        "column:x1 > 0.1 (column 'x1' is broken: all values missing in the current data)"
    ]


def test_a_promotion_drift_check_fails_on_broken_columns() -> None:
    from jupyter_mlops.context import current_settings
    from jupyter_mlops.registry.gates import GateSpec, drift_check

    reference, current = frames(shift=0.0)
    broken = current.assign(x3=np.nan)
    sound = drift_check(current_settings(), GateSpec(reference=reference, current=current))
    check = drift_check(current_settings(), GateSpec(reference=reference, current=broken))
    assert sound.passed and not check.passed
    assert check.detail.startswith("DATA BROKEN: 1 column (x3); 0 of 4 columns drifted")


def test_gate_raises_with_the_report_attached() -> None:
    reference, current = frames()
    with pytest.raises(GateFailed) as caught:
        mlops.drift(reference, current, fail_on="share_drifted > 0.1")
    assert isinstance(caught.value, DriftGateFailed)
    assert str(caught.value) == "drift gate failed: share_drifted > 0.1 (observed 0.2)"
    assert caught.value.result.n_drifted == 1
    result = mlops.drift(reference, current, fail_on="share_drifted > 0.3")
    assert result.share_drifted == pytest.approx(0.2)


def test_warn_mode_warns_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_GATE_MODE", "warn")
    reference, current = frames()
    with pytest.warns(DriftGateWarning, match="drift gate failed: column:x0 > 0.5"):
        result = mlops.drift(reference, current, fail_on="column:x0 > 0.5")
    assert result.n_drifted == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mlops.drift(reference, current, fail_on="column:x0 > 5")


def test_malformed_gate_fails_before_computing() -> None:
    with pytest.raises(MLOpsUsageError, match="cannot read --fail-on"):
        mlops.drift(None, None, fail_on="share_drifted ~ 1")
