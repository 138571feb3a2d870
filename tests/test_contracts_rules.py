"""``%expect`` rules: parsed into pandera, each kind passing and failing on real snapshots.

Every failing case must leave the snapshot name without a new version; the same rules checked
on a stored version must agree whether the manifest or pandera answered.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jupyter_mlops as mlops
from jupyter_mlops import MLOpsUsageError
from jupyter_mlops.contracts.guard import ContractViolated
from jupyter_mlops.contracts.rules import parse_rule

pytestmark = pytest.mark.usefixtures("store")


def good() -> pd.DataFrame:
    n = 400
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "age": np.arange(n) % 90 + 18,
            "plan": np.where(np.arange(n) % 3 == 0, "pro", "free"),
            "income": np.linspace(1000.0, 9000.0, n),
            "score": np.linspace(0.0, 1.0, n),
        }
    )


def broken_age(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(age=df["age"].where(df.index != 5, 130))


def negative_score(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(score=df["score"].where(df.index != 0, -0.5))


def income_holes(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(income=df["income"].where(df.index % 50 != 0))  # 2% missing


def extra_column(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(extra=1)


# (rule, a frame that breaks it, a word its observed value must show)
CASES = [
    ("age between 18 120", broken_age, "130"),
    ("score >= 0", negative_score, "-0.5"),
    ("score <= 1", lambda df: df.assign(score=df["score"] * 2), "2"),
    ("plan in {free, pro}", lambda df: df.assign(plan=df["plan"].replace("pro", "gold")), "gold"),
    ("customer_id unique", lambda df: df.assign(customer_id=df["customer_id"] // 2), "duplicated"),
    ("income not null", income_holes, "8 nulls"),
    ("income not null >= 0.99", income_holes, "0.98"),
    ("age dtype int64", lambda df: df.assign(age=df["age"].astype("float64")), "float64"),
    ("rows >= 300", lambda df: df.head(100), "100 rows"),
    ("rows between 10 500", lambda df: pd.concat([df, df]), "800 rows"),
    ("schema strict", extra_column, "extra"),
]


@pytest.mark.parametrize(("rule", "breaks", "shown"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_passes_then_blocks_a_violating_version(
    rule: str, breaks: object, shown: str, store: Path
) -> None:
    df = good()
    mlops.snapshot(df, "customers")
    contract = mlops.expect("customers", rule)
    assert [r.text for r in contract.rules] == [rule]

    assert mlops.check_contract("customers@v1").passed
    same = mlops.snapshot(df.iloc[::-1].reset_index(drop=True), "customers")  # passes: saved
    assert same.version == 2

    bad = breaks(df)  # type: ignore[operator]
    with pytest.raises(ContractViolated) as raised:
        mlops.snapshot(bad, "customers")
    message = str(raised.value)
    assert "\n" not in message and rule in message and shown in message
    assert "no version was written" in message
    assert list(mlops.snapshots("customers")["version"]) == [1, 2]

    kept = mlops.snapshot(bad, "customers", allow_violations=True)
    assert kept.version == 3
    assert "1 of 1 rules failed" in kept.tags["contract"]
    checked = mlops.check_contract("customers@v3")
    assert not checked.passed
    assert shown in checked.rules.loc[0, "observed"]


def test_manifest_answers_what_its_statistics_settle_and_says_so() -> None:
    df = good()
    mlops.snapshot(income_holes(df).assign(income=lambda d: d["income"].astype("Float64")), "c")
    settled = [
        "age between 18 120",
        "score >= 0",
        "income not null >= 0.97",
        "rows >= 300",
        "age dtype int64",
        "schema strict",
    ]
    mlops.expect("c", *settled, "plan in {free, pro}", "customer_id unique", "score != 3")
    result = mlops.check_contract("c")
    by_rule = result.rules.set_index("rule")
    assert result.passed, result
    manifest = {r for r, row in by_rule.iterrows() if row["from_manifest"]}
    assert manifest == set(settled)
    assert by_rule.loc["age between 18 120", "observed"] == "min 18, max 107"
    assert by_rule.loc["income not null >= 0.97", "observed"].startswith("8 nulls")
    assert "(6 from the manifest, 3 on the data)" in result.headline()


def test_nan_in_a_float_column_is_read_from_the_data_not_the_manifest() -> None:
    """numpy NaN is a value to Arrow (the manifest counts 0 nulls) but missing to pandera."""
    mlops.snapshot(income_holes(good()), "c")
    mlops.expect("c", "income not null")
    result = mlops.check_contract("c")
    assert not result.passed
    assert result.rules.loc[0, "from_manifest"] == False  # noqa: E712
    assert result.rules.loc[0, "observed"] == "8 nulls (non-null share 0.98)"


def test_manifest_and_pandera_agree_on_a_stored_violation() -> None:
    """The same bad data, answered from the manifest (stored) and by pandera (before saving)."""
    bad = negative_score(broken_age(good()))
    mlops.expect("c", "age between 18 120", "score >= 0", "rows >= 500")
    with pytest.raises(ContractViolated) as raised:
        mlops.snapshot(bad, "c")
    before = {o.rule.text: o.passed for o in raised.value.result.outcomes}
    mlops.snapshot(bad, "c", allow_violations=True)
    after = mlops.check_contract("c")
    assert {o.rule.text: o.passed for o in after.outcomes} == before
    assert all(o.from_manifest for o in after.outcomes)
    assert before == {"age between 18 120": False, "score >= 0": False, "rows >= 500": False}


def test_contract_versions_accumulate_replace_and_keep_history(store: Path) -> None:
    mlops.expect("c", "age between 0 120", "rows >= 10")
    mlops.expect("c", "age between 18 99", "plan in {free, pro}")  # replaces the age range
    third = mlops.expect("c", "rows >= 1", replace=True)
    assert third.version == 3 and [r.text for r in third.rules] == ["rows >= 1"]
    history = mlops.contracts("c")
    assert list(history["version"]) == [1, 2, 3]
    assert history.loc[1, "text"] == "rows >= 10; age between 18 99; plan in {free, pro}"
    files = sorted(p.name for p in (store / "contracts" / "c").iterdir())
    assert files == ["v1.json", "v2.json", "v3.json"]
    assert json.loads((store / "contracts" / "c" / "v1.json").read_text())["rules"] == [
        "age between 0 120",
        "rows >= 10",
    ]
    mlops.expect("d", "rows >= 1")
    assert list(mlops.contracts()["name"]) == ["c", "d"]


def test_schema_strict_pins_the_latest_version_columns_and_dtypes() -> None:
    mlops.snapshot(good(), "c")
    mlops.expect("c", "schema strict")
    with pytest.raises(ContractViolated, match="missing columns plan"):
        mlops.snapshot(good().drop(columns="plan"), "c")
    with pytest.raises(ContractViolated, match="changed dtypes age float64"):
        mlops.snapshot(good().assign(age=lambda d: d["age"] * 1.0), "c")
    assert mlops.snapshot(good().head(10), "c").version == 2


def test_names_without_a_contract_and_other_names_are_untouched() -> None:
    mlops.expect("guarded", "rows >= 1000")
    assert mlops.snapshot(good(), "free").version == 1
    with pytest.raises(ContractViolated):
        mlops.snapshot(good(), "guarded")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty rule"),
        ("age", "nothing is said about column 'age'"),
        ("age between 5 1", "lower bound 5 is above the upper 1"),
        ("age between a b", "'a' is not a number"),
        ("age > x", "'x' is not a number"),
        ("plan in {}", "empty"),
        ("income not null >= 2", "not in (0, 1]"),
        ("age dtype int65", "not a pandas dtype"),
        ("age sometimes", "unknown condition 'sometimes'"),
        ("rows", "rows OP N"),
        ("rows >= many", "'many' is not a number"),
    ],
)
def test_bad_rules_are_one_line_usage_errors_naming_the_forms(text: str, problem: str) -> None:
    with pytest.raises(MLOpsUsageError) as raised:
        parse_rule(text)
    message = str(raised.value)
    assert problem in message and "\n" not in message and "rows >= 1000" in message


def test_canonical_text_round_trips() -> None:
    for text in [
        "age between 0 120",
        "`monthly fee` >= 0.5",
        "plan in {free, pro, 'gold plan'}",
        "flag in {0, 1}",
        "income not null >= 0.99",
        "rows between 10 1e+06",
    ]:
        assert parse_rule(parse_rule(text).text) == parse_rule(text)
    assert parse_rule("rows between 10 1e6").text == "rows between 10 1000000"
    assert parse_rule("flag in {0, 1}").values == (0, 1)


def test_a_bad_rule_writes_no_contract_version(store: Path) -> None:
    with pytest.raises(MLOpsUsageError):
        mlops.expect("c", "rows >= 1", "age between 9 1")
    assert not (store / "contracts" / "c").exists()


def test_schema_strict_keeps_its_pinned_columns_when_other_rules_are_added() -> None:
    mlops.snapshot(good(), "c")
    mlops.expect("c", "schema strict")
    mlops.snapshot(extra_column(good()), "c", allow_violations=True)  # v2 has a column more
    mlops.expect("c", "age >= 0")  # does not re-pin to v2's columns
    with pytest.raises(ContractViolated, match="extra columns extra"):
        mlops.snapshot(extra_column(good()).head(5), "c")
    mlops.expect("c", "schema strict")  # asked again: pins the latest version, v2
    assert mlops.snapshot(extra_column(good()).head(5), "c").version == 3


def test_a_damaged_contract_file_is_one_line_naming_it(store: Path) -> None:
    mlops.expect("c", "rows >= 1")
    (store / "contracts" / "c" / "v1.json").write_text("{not json")
    with pytest.raises(mlops.MLOpsError) as raised:
        mlops.snapshot(good(), "c")
    message = str(raised.value)
    assert "contract file" in message and "v1.json is damaged" in message and "\n" not in message
    assert mlops.snapshots().empty  # nothing was saved past a contract that cannot be read
