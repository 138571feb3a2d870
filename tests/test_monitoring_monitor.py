"""%monitor on synthetic traffic written through serving's inference-log writer: the shifted
window is flagged and no other, labels give the exact accuracy per window, the reference is the
training snapshot found through lineage, and the result is published where %lineage and
GET monitor find it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import jupyter_mlops as mlops
from jupyter_mlops import records
from jupyter_mlops.context import current_settings
from jupyter_mlops.errors import GateFailed, MLOpsNotFound, MLOpsUsageError
from jupyter_mlops.monitoring.feedback import read_feedback
from jupyter_mlops.monitoring.report_html import monitor_html
from jupyter_mlops.monitoring.service import latest, parse_time, parse_window
from jupyter_mlops.registry.errors import GateWarning
from jupyter_mlops.tracking.client import mlflow_client
from tests.monitoring_support import START, trained_model, write_traffic

SINCE = START.isoformat()


@pytest.fixture(scope="module")
def served(template_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One store for the module: a model trained on a snapshot, six hours of traffic (hour 3
    shifted), labels for hours 0-2 and 4 (with hour 4 predicted wrong on purpose)."""
    import shutil

    home = tmp_path_factory.mktemp("monitor") / ".mlops"
    home.mkdir()
    shutil.copy(template_store, home / "mlflow.db")
    patch = pytest.MonkeyPatch()
    patch.setenv("MLOPS_HOME", str(home))
    patch.chdir(home.parent)
    try:
        trained_model()
        logged = write_traffic()
        labelled = logged[logged["hour"].isin([0, 1, 2, 4])].copy()
        flip = labelled["hour"] == 4  # hour 4: every second label contradicts the prediction
        flip &= np.arange(len(labelled)) % 2 == 0
        labelled.loc[flip, "truth"] = 1 - labelled.loc[flip, "predicted"]
        labelled.loc[~flip, "truth"] = labelled.loc[~flip, "predicted"]
        revenue = np.where(labelled["hour"] == 4, 1.0, 3.0)
        mlops.feedback("churn@prod", labelled["request_id"], labelled["truth"], revenue=revenue)
        result = mlops.monitor("churn@prod", since=SINCE)
    finally:
        patch.undo()
    return {"home": home, "logged": logged, "labelled": labelled, "result": result}


@pytest.fixture
def in_store(served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("MLOPS_HOME", str(served["home"]))
    return served


def test_the_shifted_window_is_flagged_and_no_other(in_store: dict[str, Any]) -> None:
    windows = in_store["result"].windows
    assert list(windows["requests"]) == [100] * 6
    assert list(windows["rows"]) == [1000] * 6
    assert [bool(d) for d in windows["drifted"]] == [False, False, False, True, False, False]
    assert windows.loc[3, "drifted_columns"] == "age, income"
    assert windows.loc[3, "prediction_drifted"] is True or windows.loc[3, "prediction_drifted"]
    assert not any(windows.loc[[0, 1, 2, 4, 5], "prediction_drifted"].astype(bool))
    assert windows.loc[3, "out_of_range_share"] > 0.2 > windows.loc[0, "out_of_range_share"]
    assert in_store["result"].drifted_windows == [pd.Timestamp(START) + pd.Timedelta(hours=3)]


def test_labels_give_the_exact_accuracy_per_window(in_store: dict[str, Any]) -> None:
    windows = in_store["result"].windows
    assert list(windows["labelled"]) == [1000, 1000, 1000, 0, 1000, 0]
    assert list(windows["accuracy"].iloc[[0, 1, 2, 4]]) == [1.0, 1.0, 1.0, 0.5]
    assert np.isnan(windows["accuracy"].iloc[3]) and np.isnan(windows["accuracy"].iloc[5])
    assert list(windows["outcome.revenue"].iloc[[0, 4]]) == [3.0, 1.0]
    assert in_store["result"].task == "classification"


def test_the_reference_is_the_training_snapshot_found_through_lineage(
    in_store: dict[str, Any],
) -> None:
    result = in_store["result"]
    assert result.reference == "churn-train@v1"
    assert "lineage" in result.reference_source and "churn/1" in result.reference_source
    assert result.inputs == ("age", "income", "plan") and result.predictions == ("prediction",)


def test_published_to_a_run_the_version_lineage_and_get_monitor(in_store: dict[str, Any]) -> None:
    result = in_store["result"]
    client = mlflow_client(current_settings().tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.tags[records.TAG_MONITOR_MODEL] == "churn@prod"
    history = client.get_metric_history(result.run_id, "monitor.share_drifted")
    assert [round(m.value, 3) for m in sorted(history, key=lambda m: m.step)][3] == 0.667
    version = client.get_model_version("churn", "1")
    assert json.loads(version.tags[records.TAG_MONITOR_LAST])["run_id"] == result.run_id
    lineage = mlops.lineage("churn@prod")
    drift = [n for n in lineage.to_json()["nodes"] if n["kind"] == "drift"]
    assert [n["label"] for n in drift] == ["churn-train@v1 vs churn@prod window 2026-11-30 03:00"]
    answer = latest(current_settings(), "churn@prod")
    assert answer["drifted_windows"] == ["2026-11-30T03:00:00+00:00"]
    assert answer["windows"][4]["accuracy"] == 0.5
    with pytest.raises(MLOpsNotFound, match="has not been monitored"):
        latest(current_settings(), "other@prod")


def test_html_is_static_svg_and_text_is_deterministic(in_store: dict[str, Any]) -> None:
    result = in_store["result"]
    html = monitor_html(result)
    assert "<script" not in html and html.count("<svg") >= 6
    assert "churn-train@v1" in html and "outcome.revenue" in html
    text = repr(result)
    assert text.splitlines()[0].startswith("MonitorResult: churn@prod (v1): 600 requests")
    assert text == repr(result)


def test_fail_on_is_a_gate_recorded_like_a_promotion(in_store: dict[str, Any]) -> None:
    home = in_store["home"]
    with pytest.raises(GateFailed) as failed:
        mlops.monitor(
            "churn@prod",
            since=SINCE,
            fail_on="window.share_drifted > 0.3, quality.accuracy < 0.85",
        )
    result = failed.value.monitor  # type: ignore[attr-defined]
    rows = {r.name: r for r in result.gate.rows}
    assert not rows["window.share_drifted > 0.3"].passed
    assert "2026-11-30 03:00" in rows["window.share_drifted > 0.3"].detail
    assert not rows["quality.accuracy < 0.85"].passed
    assert rows["quality.accuracy < 0.85"].value == 0.5
    reports = sorted((home / records.REPORTS_DIRNAME).glob("gate-churn-v1-2*.json"))
    decision = json.loads(reports[-1].read_text())
    assert decision["subject"] == "monitor churn@prod" and decision["passed"] is False
    assert reports[-1].with_suffix(".xml").is_file()
    passing = mlops.monitor("churn@prod", since=SINCE, fail_on="window.missing_share > 0.1")
    assert passing.passed and passing.gate is not None


def test_a_gate_on_labels_before_any_arrived_is_not_judged(in_store: dict[str, Any]) -> None:
    result = mlops.monitor(
        "churn@prod", since=SINCE, until="2026-11-30T04:00", window="30min",
        fail_on="quality.f1 < 0.99",
    )  # fmt: skip
    assert result.passed  # hours 0-2 are perfect, hour 3 has no labels
    assert len(result.windows) == 8


def test_bad_input_is_one_line_naming_the_fix(in_store: dict[str, Any]) -> None:
    cases = [
        ({"window": "soon"}, "--window 'soon'"),
        ({"since": "yesterday-ish"}, "--since"),
        ({"fail_on": "window.share_drifted >"}, "cannot read --fail-on"),
        ({"fail_on": "metrics.acc < 1"}, "unknown name 'metrics.acc'"),
        ({"fail_on": "window.nope > 1"}, "does not compute"),
        ({"fail_on": "quality.acuracy < 1"}, "does not compute"),
        ({"retrain": "missing.ipynb", "fail_on": "window.requests < 1"}, "no such notebook"),
        ({"since": "2030-01-01"}, "no logged requests"),
    ]
    for kwargs, message in cases:
        with pytest.raises(MLOpsUsageError, match=message) as raised:
            mlops.monitor("churn@prod", **{"since": SINCE, **kwargs})
        assert "\n" not in str(raised.value)


def test_feedback_is_append_only_and_the_latest_label_wins(in_store: dict[str, Any]) -> None:
    settings = current_settings()
    before = read_feedback(settings, "churn")
    assert before is not None and len(before) == 4000
    mlops.feedback("churn@prod", ["r00-0000"], [7])
    after = read_feedback(settings, "churn")
    assert after is not None and len(after) == 4000
    assert after.set_index(["request_id", "row"]).loc[("r00-0000", 0), "label"] == 7
    with pytest.raises(MLOpsUsageError, match="2 values for 1 request ids"):
        mlops.feedback("churn@prod", ["a"], [1, 2])
    with pytest.raises(MLOpsUsageError, match="give labels"):
        mlops.feedback("churn@prod", ["a"])
    original = before.set_index(["request_id", "row"]).loc[("r00-0000", 0), "label"]
    mlops.feedback("churn@prod", ["r00-0000"], [int(original)])


def test_the_magics_parse_call_and_render(in_store: dict[str, Any], ip: Any) -> None:
    from IPython.core.error import UsageError

    result = ip.run_line_magic("monitor", f"churn@prod --since {SINCE} --window 2h")
    assert len(result.windows) == 3 and result.window == "2h"
    formatted, _ = ip.display_formatter.format(result)
    assert "<svg" in formatted["text/html"] and "<script" not in formatted["text/html"]
    with pytest.raises(GateFailed):
        ip.run_line_magic(
            "monitor", f'churn@prod --since {SINCE} --fail-on "window.share_drifted > 0.3"'
        )
    for line, message in [
        (f"churn@prod --since {SINCE} -p a 1", "-p gives parameters to --retrain"),
        ("churn@prod --window=-1h", "--window '-1h'"),
        ("churn@prod --fail_on x", "did you mean --fail-on"),
    ]:
        with pytest.raises(UsageError, match=message):
            ip.run_line_magic("monitor", line)
    ip.run_line_magic("config", "MLOps.gate_mode = 'warn'")
    try:
        with pytest.warns(GateWarning) as warned:
            ip.run_line_magic(
                "monitor", f'churn@prod --since {SINCE} --fail-on "window.share_drifted > 0.3"'
            )
    finally:
        ip.run_line_magic("config", "MLOps.gate_mode = 'raise'")
    assert [w.filename for w in warned] == ["%monitor"]
    listed = ip.run_line_magic("schedule", "list")
    assert listed.ids == [] and "no scheduler is running" in repr(listed)
    for line, message in [
        ("rm nope", "no schedule 'nope'"),
        ("job.ipynb", "give --cron"),
        ("a.ipynb b.ipynb --cron '0 3 * * *'", "give one notebook"),
    ]:
        with pytest.raises(UsageError, match=message):
            ip.run_line_magic("schedule", line)


def test_day_durations_read_without_pandas_deprecations() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas 4 deprecates the unit 'd' that users write
        assert parse_window("1d") == pd.Timedelta(days=1)
        assert parse_window("15min") == pd.Timedelta(minutes=15)
        since = parse_time("7d", "--since")
    assert since is not None
    assert abs(pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=7) - since) < pd.Timedelta(minutes=1)
