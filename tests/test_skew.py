"""``%skew``: features logged by serving against the registered function on the training data.

The inference log is written with the serving package's own ``TrafficWriter`` (what ``%serve``
uses), so these tests need no server; ``tests/test_contracts_serving.py`` runs a real endpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import jupyter_mlops as mlops
from jupyter_mlops import MLOpsUsageError
from jupyter_mlops.context import current_settings
from jupyter_mlops.contracts.skew import SkewResult
from jupyter_mlops.registry.errors import GateRejected
from jupyter_mlops.serving.traffic import TrafficWriter
from tests.features_support import make_features
from tests.registry_support import client

pytestmark = pytest.mark.usefixtures("registry_store")
MODEL = "skewed"


def raw_customers(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "age": rng.integers(18, 90, n),
            "income": rng.lognormal(8, 0.5, n),
            "plan": rng.choice(["free", "pro"], n),
        }
    )


TRAINED: dict[str, pd.DataFrame] = {}  # the module's store is shared: train once


@pytest.fixture
def trained(registry_store: Path) -> pd.DataFrame:
    """``skewed`` v1, trained in a run that saved its raw training data; aliases on v1."""
    if "raw" not in TRAINED:
        raw = raw_customers()
        with mlops.track("train") as run:
            mlops.snapshot(raw, "skew-train")
            model = LogisticRegression().fit(make_features(raw), raw["age"] > 50)
        mlops.register(model, MODEL, run=run.run_id, features=make_features)
        for alias in ("clean", "skewed", "quiet"):
            client(registry_store).set_registered_model_alias(MODEL, alias, "1")
        TRAINED["raw"] = raw
    return TRAINED["raw"]


def log_traffic(alias: str, raw: pd.DataFrame, transform: Any = None) -> None:
    """What an endpoint logs for ``raw`` requests: inputs, predictions, and the features it
    computed, through ``transform`` (a serving-side change to the raw input) when given."""
    model = mlops.load_model(f"{MODEL}/1").unwrap_python_model()
    seen = transform(raw) if transform is not None else raw
    features = model.compute_features(seen)
    with TrafficWriter(current_settings(), MODEL, alias) as log:
        for start in range(0, len(raw), 100):
            part = slice(start, start + 100)
            log.log(
                inputs=raw.iloc[part],
                outputs=model.predict_from_features(features.iloc[part]),
                features=features.iloc[part],
                version=1,
                latency_ms=1.0,
            )


def test_same_code_on_serving_traffic_is_no_skew(trained: pd.DataFrame) -> None:
    log_traffic("clean", trained.sample(600, random_state=1))
    result = mlops.skew(f"{MODEL}@clean", key="customer_id")
    assert isinstance(result, SkewResult) and result.passed, result
    assert result.training == "skew-train@v1" and result.n_drifted == 0
    assert result.matched_rows == 600 and result.mismatch_share == 0.0
    assert list(result.features["feature"]) == ["age_decade", "log_income", "is_pro"]
    assert set(result.features["mismatch_share"]) == {0.0}


def test_a_skewed_serving_transform_is_caught_and_gated(
    trained: pd.DataFrame, registry_store: Path
) -> None:
    """Serving receives income in cents (an upstream change): same function, other features."""
    log_traffic(
        "skewed", trained.sample(600, random_state=2), lambda r: r.assign(income=r.income * 100)
    )
    result = mlops.skew(f"{MODEL}@skewed", key="customer_id")
    assert not result.passed
    assert result.features.set_index("feature")["drifted"].to_dict() == {
        "age_decade": False,
        "log_income": True,
        "is_pro": False,
    }
    shares = dict(result.mismatches)
    assert shares == {"age_decade": 0.0, "log_income": 1.0, "is_pro": 0.0}
    assert result.mismatch_share == 1.0 and "100.0% differ" in repr(result)

    with pytest.raises(GateRejected) as raised:
        mlops.skew(
            f"{MODEL}@skewed", key="customer_id", fail_on="mismatch_share > 0.01, n_drifted > 2"
        )
    decision = raised.value.result
    assert [c.passed for c in decision.rows] == [False, True]
    assert {c.kind for c in decision.rows} == {"skew"}
    assert decision.subject == f"skew {MODEL}@skewed v1"
    tag = client(registry_store).get_model_version(MODEL, "1").tags["mlops.gate.last"]
    assert json.loads(tag)["checks"][0]["name"] == "mismatch_share > 0.01"
    assert Path(decision.reports[1]).read_text().count("<failure") == 1

    passing = mlops.skew(f"{MODEL}@skewed", fail_on="column:age_decade > 0.1")
    assert passing.decision is not None and passing.passed


def test_since_keeps_only_later_requests(trained: pd.DataFrame) -> None:
    log_traffic("quiet", trained.head(200))
    later = pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1)
    with pytest.raises(MLOpsUsageError, match="no features logged for skewed@quiet v1 since"):
        mlops.skew(f"{MODEL}@quiet", since=later)


def test_usage_errors_name_what_to_do(trained: pd.DataFrame) -> None:
    log_traffic("clean", trained.head(50))
    with pytest.raises(MLOpsUsageError, match="--key 'nope' is not a column"):
        mlops.skew(f"{MODEL}@clean", key="nope")
    with pytest.raises(MLOpsUsageError, match="cannot read --fail-on"):
        mlops.skew(f"{MODEL}@clean", fail_on="mismatch > 1")
    with pytest.raises(MLOpsUsageError, match="names column 'nope', which was not tested"):
        mlops.skew(f"{MODEL}@clean", fail_on="column:nope > 0.1")
    with mlops.track("plain") as run:
        pass
    mlops.register(
        lambda df: df.sum(axis=1), "plain", run=run.run_id, input_example=trained.head(2)[["age"]]
    )
    with pytest.raises(MLOpsUsageError, match="carries no feature function"):
        mlops.skew("plain/1")


def test_skew_magic_shows_the_report_then_fails(trained: pd.DataFrame, ip: Any) -> None:
    log_traffic("skewed", trained.head(300), lambda r: r.assign(income=r.income * 100))
    ok = ip.run_cell(f"%skew {MODEL}@skewed --key customer_id")
    assert ok.error_in_exec is None and not ok.result.passed
    assert "log_income" in ip.display_formatter.format(ok.result)[0]["text/html"]
    failed = ip.run_cell(f'%skew {MODEL}@skewed --fail-on "share_drifted > 0"')
    assert type(failed.error_in_exec).__name__ == "GateRejected"


def test_pairing_by_key_counts_differing_values_within_a_tolerance() -> None:
    from jupyter_mlops.contracts.skew import paired_mismatches

    training = pd.DataFrame(
        {"id": [1, 2, 3, 4, 4], "x": [1.0, 2.0, np.nan, 4.0, 5.0], "c": ["a", "b", "c", "d", "e"]}
    )
    serving = pd.DataFrame(
        {"id": [2, 3, 4, 9], "x": [2.0 * (1 + 1e-9), np.nan, 5.5, 0.0], "c": ["b", "c", "x", "z"]}
    )
    matched, shares, any_share = paired_mismatches(training, serving, ["x", "c"], "id")
    # id 4 stands for its last training row (x=5.0, c="e"); id 1 and 9 are on one side only
    assert matched == 3
    assert dict(shares) == {"x": pytest.approx(1 / 3), "c": pytest.approx(1 / 3)}
    assert any_share == pytest.approx(1 / 3)
    assert paired_mismatches(training, serving.assign(id=[7, 8, 9, 10]), ["x"], "id") == (
        0,
        [("x", 0.0)],
        0.0,
    )
