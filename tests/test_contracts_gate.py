"""Contracts as a gate (``%promote --expect``), as a record (reports, the run), in the magics, and
the per-request checker ``%serve --enforce-contract`` uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.contracts.results import ContractResult
from jupyter_mlops.contracts.service import request_checker
from jupyter_mlops.contracts.store import Contract
from jupyter_mlops.registry.errors import GateRejected, GateWarning
from tests.registry_support import client

pytestmark = pytest.mark.usefixtures("registry_store")


def customers(n: int = 300, bad_age: bool = False) -> pd.DataFrame:
    age = np.arange(n) % 70 + 18
    if bad_age:
        age[3] = 150
    return pd.DataFrame(
        {"customer_id": np.arange(n), "age": age, "plan": np.where(age > 40, "pro", "free")}
    )


def train_and_register(model_name: str, data_name: str, frame: pd.DataFrame) -> int:
    with mlops.track("train"):
        mlops.snapshot(frame, data_name, allow_violations=True)
    return mlops.register(
        lambda df: df["age"] * 2.0, model_name, input_example=frame.head(3)
    ).version


def test_expect_gate_blocks_an_alias_move_when_the_training_data_breaks_the_contract(
    registry_store: Path,
) -> None:
    mlops.expect("gate-data", "age between 18 120", "plan in {free, pro}")
    assert train_and_register("gated", "gate-data", customers()) == 1
    passed = mlops.promote("gated", "champion", expect="gate-data")
    assert passed.moved and passed.rows[0].kind == "contract"
    assert passed.rows[0].value == "2 of 2 rules passed"
    assert passed.rows[0].inputs == ("gate-data@v1",)

    assert train_and_register("gated", "gate-data", customers(bad_age=True)) == 2
    with pytest.raises(GateRejected) as raised:
        mlops.promote("gated", "champion", expect="gate-data")
    row = raised.value.result.rows[0]
    assert not row.passed and "gate-data@v2: age between 18 120" in row.detail
    assert "(min 18, max 150)" in row.detail  # from the manifest of the training snapshot
    versions = client(registry_store).get_registered_model("gated").aliases
    assert int(versions["champion"]) == 1  # the alias did not move
    recorded = json.loads(
        client(registry_store).get_model_version("gated", "2").tags["mlops.gate.champion"]
    )
    assert recorded["decision"] == "rejected" and recorded["checks"][0]["kind"] == "contract"


def test_expect_fails_a_version_not_trained_on_that_name() -> None:
    train_and_register("other-model", "other-data", customers())
    mlops.expect("gate-data2", "rows >= 1")
    with pytest.warns(GateWarning):
        result = mlops.promote("other-model", "champion", expect="gate-data2", warn_only=True)
    assert not result.passed and not result.moved
    assert "was not trained on a version of 'gate-data2'" in result.rows[0].detail
    assert "other-data@v1" in result.rows[0].detail


def test_checks_are_recorded_like_gate_decisions(registry_store: Path) -> None:
    mlops.expect("rec-data", "rows >= 1000")
    with mlops.track("watch") as run:
        mlops.snapshot(customers(), "rec-data", allow_violations=True)
        checked = mlops.check_contract("rec-data")
    assert not checked.passed and len(checked.reports) == 2
    report = json.loads(Path(checked.reports[0]).read_text())
    assert report["subject"] == "contract rec-data v1 on rec-data@v1"
    assert report["checks"][0]["name"] == "rows >= 1000" and report["checks"][0]["passed"] is False
    assert Path(checked.reports[1]).read_text().count("<failure") == 1
    tags = client(registry_store).get_run(run.run_id).data.tags
    assert json.loads(tags["mlops.gate.last"])["passed"] is False
    artifacts = client(registry_store).list_artifacts(run.run_id, "gates")
    assert len(artifacts) == 2  # the save's check and %expect check


def test_request_checker_names_the_rule_and_ignores_whole_dataset_rules() -> None:
    mlops.expect(
        "req",
        "age between 18 120",
        "plan in {free, pro}",
        "plan not null",
        "customer_id unique",
        "rows >= 1000",
        "age not null >= 0.9",
    )
    check = request_checker(current_settings(), "req")
    assert check(pd.DataFrame({"age": [30], "plan": ["pro"]})) is None
    assert check(pd.DataFrame({"age": [30, 30], "customer_id": [1, 1]})) is None  # dataset rules
    assert check(pd.DataFrame({"other": [1]})) is None  # the model's schema says what is missing
    message = check(pd.DataFrame({"age": [30, 200], "plan": ["pro", "free"]}))
    assert (
        message == "contract req v1: rule 'age between 18 120' failed: 1 failing value (e.g. 200)"
    )
    assert "plan in {free, pro}" in (check(pd.DataFrame({"plan": ["gold"]})) or "")
    assert "plan not null" in (check(pd.DataFrame({"plan": [None]})) or "")
    with pytest.raises(mlops.MLOpsUsageError, match="no contract on 'nothing'"):
        request_checker(current_settings(), "nothing")


# --- the magics -------------------------------------------------------------------------------
def run(ip: Any, line: str) -> Any:
    result = ip.run_cell(line)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def test_expect_magics_render_and_guard_snapshot(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.user_ns.update(good=customers(), bad=customers(bad_age=True))
    contract = run(ip, '%expect mg "age between 18 120" "rows >= 10" "customer_id unique"')
    assert isinstance(contract, Contract) and contract.version == 1
    assert "age between 18 120" in ip.display_formatter.format(contract)[0]["text/html"]
    run(ip, "%snapshot good --name mg")
    failed = ip.run_cell("%snapshot bad --name mg")
    assert type(failed.error_in_exec).__name__ == "ContractViolated"
    shown = "\n".join(failed.error_in_exec._render_traceback_())
    assert "[FAIL] age between 18 120" in shown and "[pass] rows >= 10" in shown
    assert list(mlops.snapshots("mg")["version"]) == [1]
    kept = run(ip, "%snapshot bad --name mg --allow-violations")
    assert kept.version == 2 and "contract" in kept.tags

    result = run(ip, "%expect check mg@v2")
    assert isinstance(result, ContractResult) and not result.passed
    html = ip.display_formatter.format(result)[0]["text/html"]
    assert "manifest" in html and "1 failing value" not in html  # answered from the manifest
    assert list(run(ip, "%expect list mg")["version"]) == [1]
    assert "mg" in set(run(ip, "%mlops expect list")["name"])

    capsys.readouterr()
    for line, problem in [
        ("%expect mg age", "nothing is said about column 'age'"),
        ("%expect mg", "give at least one rule"),
        ("%expect check nothing", "nothing"),
        ("%expect check mg --contrat x", "did you mean --contract"),
        ("%skew", "the following arguments are required: model"),
    ]:
        outcome = ip.run_cell(line)
        assert type(outcome.error_in_exec).__name__ == "UsageError", line
        assert problem in str(outcome.error_in_exec) and "\n" not in str(outcome.error_in_exec)
    assert "Traceback" not in capsys.readouterr().out


def test_promote_magic_takes_expect(ip: Any) -> None:
    mlops.expect("pm-data", "age between 18 120")
    train_and_register("pm-model", "pm-data", customers(bad_age=True))
    failed = ip.run_cell("%promote pm-model --to champion --expect pm-data")
    assert type(failed.error_in_exec).__name__ == "GateRejected"
    assert "age between 18 120" in failed.error_in_exec.result.rows[0].detail
    assert "contract pm-data v1 on pm-data@v1" in str(failed.error_in_exec)


def test_tab_completes_contract_names_and_flags(ip: Any) -> None:
    mlops.snapshot(customers(5), "tabbed-data")
    ip.user_ns["tab_features"] = lambda df: df
    for line, expected in [
        ("%expect tabbed", ["tabbed-data"]),
        ("%expect check tabbed", ["tabbed-data"]),
        ("%expect list tabbed", ["tabbed-data"]),
        ("%expect tabbed-data --rep", ["--replace"]),
        ("%promote m --expect tabbed", ["tabbed-data"]),
        ("%register m --name x --features tab_f", ["tab_features"]),
        ("%skew m --fail", ["--fail-on"]),
    ]:
        assert ip.complete("", line, len(line))[1] == expected, line
