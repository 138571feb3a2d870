"""``--fail-on``: drift names in the registry's one grammar, concluded as a recorded decision."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import jupyter_mlops as mlops
from jupyter_mlops import GateFailed, MLOpsUsageError
from jupyter_mlops.context import current_settings
from jupyter_mlops.drift import compute_drift
from jupyter_mlops.drift.gate import DriftCheck, conditions, describe, fail_on_checks, parse_fail_on
from jupyter_mlops.registry.errors import GateRejected, GateWarning
from jupyter_mlops.tracking.client import mlflow_client


def frames(shift: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({f"x{i}": rng.normal(0, 1, 2000) for i in range(4)})
    current = pd.DataFrame({f"x{i}": rng.normal(shift if i == 0 else 0, 1, 2000) for i in range(4)})
    current["my col"] = reference["my col"] = rng.normal(0, 1, 2000)
    return reference, current


def texts(fail_on: str) -> list[str]:
    return [describe(node) for node in conditions(parse_fail_on(fail_on))]


def test_parses_conditions_and_separators() -> None:
    assert texts("share_drifted > 0.3") == ["share_drifted > 0.3"]
    assert texts("column:age>=2e-1, n_drifted != 0 or drifted==1") == [
        "column:age >= 0.2",
        "n_drifted != 0",
        "drifted == 1",
    ]
    assert texts('column:"my col" < .05') == ['column:"my col" < 0.05']
    assert texts("drifted_columns >= 2 and share_drifted > 0.1, not broken_columns == 0") == [
        "(drifted_columns >= 2 and share_drifted > 0.1)",
        "not (broken_columns == 0)",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "share_drifted",
        "share_drifted > ",
        "share_drifted >> 0.3",
        "share > 0.3",
        "share_drifted > 0.3,",
        "share_drifted > 0.3 share_drifted > 0.2",
        "__import__('os').system('touch hacked') > 0",
        "share_drifted > 1 + 1",
        "column: > 0.1",
        "metrics.val_acc > 0.9",
    ],
)
def test_malformed_conditions_are_usage_errors(text: str) -> None:
    with pytest.raises(MLOpsUsageError) as caught:
        parse_fail_on(text)
    message = str(caught.value)
    assert message.startswith("cannot read --fail-on") and "share_drifted > 0.3" in message
    assert "\n" not in message


def test_require_does_not_read_drift_names() -> None:
    from jupyter_mlops.registry.checks import parse

    for text in ("share_drifted > 0.3", "column:age > 0.1", "metrics.a > 1, metrics.b > 2"):
        with pytest.raises(MLOpsUsageError, match="cannot read --require"):
            parse(text)


def test_nothing_is_evaluated() -> None:
    with pytest.raises(MLOpsUsageError):
        parse_fail_on("__import__('os').system('touch hacked') > 0")
    assert not Path("hacked").exists()


def test_conditions_read_dataset_and_column_values() -> None:
    reference, current = frames()
    result = compute_drift(reference, current)
    assert result.n_drifted == 1 and result.share_drifted == pytest.approx(0.2)
    (quiet,) = fail_on_checks(result, "share_drifted > 0.3")
    assert quiet.passed and quiet.threshold == "<= 0.3" and quiet.value == pytest.approx(0.2)
    share, column = fail_on_checks(result, "share_drifted >= 0.2, column:x0 > 0.5")
    observed = result.column("x0").statistic
    assert (share.name, share.passed, share.threshold) == ("share_drifted >= 0.2", False, "< 0.2")
    assert (column.name, column.value, column.passed) == ("column:x0 > 0.5", observed, False)
    assert observed > 0.5
    assert column.kind == "drift" and column.inputs == ("reference", "current")
    assert all(c.passed for c in fail_on_checks(result, 'column:"my col" > 0.5, drifted == 1'))
    (both,) = fail_on_checks(result, "n_drifted >= 1 and drifted_columns < 2")
    assert not both.passed and both.value == "n_drifted=1, drifted_columns=1"
    with pytest.raises(MLOpsUsageError, match="names column 'age', which was not tested"):
        fail_on_checks(result, "column:age > 0.1")


def test_broken_columns_fail_the_gate() -> None:
    reference, current = frames()
    current = current.assign(x1=np.nan, x2=current["x2"].astype(str))
    with pytest.raises(GateRejected) as caught:
        mlops.drift(reference, current, fail_on="broken_columns > 0")
    (row,) = caught.value.result.failures
    assert (row.name, row.value, row.threshold) == ("broken_columns > 0", 2.0, "<= 0")
    result = compute_drift(reference, current)
    assert result.summary().startswith("DATA BROKEN: 2 columns (x1, x2); ")
    (broken,) = fail_on_checks(result, "column:x1 > 0.1")
    assert not broken.passed
    assert broken.detail == "column 'x1' is broken: all values missing in the current data"


def test_a_promotion_drift_check_fails_on_broken_columns() -> None:
    reference, current = frames(shift=0.0)
    broken = current.assign(x3=np.nan)
    sound = DriftCheck(reference, current).check(current_settings())
    check = DriftCheck(reference, broken).check(current_settings())
    assert sound.passed and not check.passed
    assert check.detail.startswith("DATA BROKEN: 1 column (x3); 0 of 4 columns drifted")
    assert check.kind == "drift" and check.inputs == ("reference", "current")


def test_gate_raises_gate_failed_with_the_decision() -> None:
    reference, current = frames()
    with pytest.raises(GateFailed) as caught:
        mlops.drift(reference, current, fail_on="share_drifted > 0.1")
    assert isinstance(caught.value, GateRejected)
    assert str(caught.value) == (
        "gate FAILED: drift reference vs current (1 of 1 checks failed): "
        "share_drifted > 0.1 (value 0.2, need <= 0.1)"
    )
    assert caught.value.result.decision == "failed"
    json_report, xml_report = map(Path, caught.value.result.reports)
    assert json_report.name.startswith("gate-drift_reference_vs_current-")
    assert json_report.parent == current_settings().home / "reports" and xml_report.exists()
    result = mlops.drift(reference, current, fail_on="share_drifted > 0.3")
    assert result.share_drifted == pytest.approx(0.2)


def test_warn_mode_warns_with_the_one_gate_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_GATE_MODE", "warn")
    reference, current = frames()
    with pytest.warns(GateWarning, match=r"column:x0 > 0.5 \(value") as caught:
        result = mlops.drift(reference, current, fail_on="column:x0 > 0.5")
    assert caught[0].filename == __file__  # the caller's line, not ours
    assert result.n_drifted == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mlops.drift(reference, current, fail_on="column:x0 > 5")


def test_malformed_gate_fails_before_computing() -> None:
    with pytest.raises(MLOpsUsageError, match="cannot read --fail-on"):
        mlops.drift(None, None, fail_on="share_drifted ~ 1")


def reports(home: Path) -> list[dict[str, object]]:
    folder = home / "reports"
    found = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    assert len(list(folder.glob("*.xml"))) == len(found)
    return sorted(found, key=lambda record: str(record["at"]))


def test_fail_on_is_recorded_like_a_promotion_in_reports_mlflow_and_lineage() -> None:
    """Issue 14: a ``--fail-on`` failure appears in %lineage and <home>/reports/ like
    %promote's: JSON + JUnit, on the model version (JSON on its run) or on the monitoring run."""
    home = current_settings().home
    reference, current = frames()
    with mlops.track("train"):
        mlops.log(val_acc=0.95)
    mlops.register(torch.nn.Linear(4, 2), "net")
    mlops.promote("net/1", "champion", "metrics.val_acc >= 0.9")
    with mlops.track("monitor") as monitor, pytest.raises(GateRejected) as on_run:
        mlops.drift(reference, current, fail_on="share_drifted > 0.1", labels=("train", "live"))
    with pytest.raises(GateRejected) as on_model:
        mlops.drift(reference, current, fail_on="column:x0 > 0.5", model="net@champion")

    recorded = reports(home)
    assert [r["subject"] for r in recorded].count("drift train vs live") == 1
    assert [r["decision"] for r in recorded] == ["promoted", "failed", "failed"]
    by_subject = {r["subject"]: r for r in recorded}
    assert by_subject["drift train vs live"]["run_id"] == monitor.run_id
    assert by_subject["drift reference vs current"]["model"] == "net"
    xml = Path(on_model.value.result.reports[1]).read_text()
    assert 'failures="1"' in xml and 'name="column:x0 &gt; 0.5"' in xml
    assert Path(on_run.value.result.reports[0]).parent == home / "reports"

    client = mlflow_client(current_settings().tracking_uri)
    run_tag = json.loads(client.get_run(monitor.run_id).data.tags["mlops.gate.last"])
    assert run_tag["decision"] == "failed" and run_tag["subject"] == "drift train vs live"
    version_tag = json.loads(client.get_model_version("net", "1").tags["mlops.gate.last"])
    assert version_tag["subject"] == "drift reference vs current"

    from_run = mlops.lineage(monitor.run_id)
    gates = {n.label: n for n in from_run.of_kind("gate")}
    assert gates["drift train vs live"].attrs["passed"] is False
    assert [c["name"] for c in gates["drift train vs live"].attrs["checks"]] == [
        "share_drifted > 0.1"
    ]
    from_model = mlops.lineage("net/1")
    labels = sorted(n.label for n in from_model.of_kind("gate"))
    assert labels == ["drift reference vs current", "net v1 -> champion"]
