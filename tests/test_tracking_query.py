"""%runs and %compare on a real store, and how runs render (HTML and deterministic text)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

import jupyter_mlops as mlops
from jupyter_mlops.display import tracking as display_tracking


def make_runs() -> list[str]:
    ids = []
    for name, lr, curve in (("slow", 0.01, [0.9, 0.8, 0.7]), ("fast", 0.1, [0.9, 0.5, 0.2])):
        with mlops.track(name, params={"lr": lr, "layers": 2}, experiment="exp") as run:
            for value in curve:
                mlops.log(loss=value)
            mlops.log(acc=1 - curve[-1])
        ids.append(run.run_id)
    return ids


def test_runs_lists_one_row_per_run_with_params_and_metrics(store: Path, ip: Any):
    slow, fast = make_runs()
    frame = ip.run_line_magic("runs", "--experiment exp")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [
        "run_id", "name", "status", "start_time",
        "params.layers", "params.lr", "metrics.acc", "metrics.loss",
    ]  # fmt: skip
    assert list(frame.run_id) == [fast, slow]  # newest first
    assert list(frame["metrics.loss"]) == [0.2, 0.7]
    assert set(frame.status) == {"FINISHED"}

    best = ip.run_line_magic("runs", '--experiment exp --sort "metrics.loss ASC" --limit 1')
    assert list(best.name) == ["fast"]
    by_param = ip.run_line_magic("runs", "--experiment exp --filter \"params.lr = '0.01'\"")
    assert list(by_param.name) == ["slow"]
    assert list(mlops.runs(experiment="exp", sort="-metrics.acc").name) == ["fast", "slow"]

    html = ip.display_formatter.format(frame)[0]["text/html"]
    assert "mlops-runs-" in html and "onclick" in html and "fast" in html


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--experiment nowhere", "does not exist; known: Default, exp"),
        ('--experiment exp --filter "metrics.loss >>> 1"', "could not use the filter"),
        ('--experiment exp --sort "loss"', "sort by metrics.NAME"),
        ("--experiment exp --limit 0", "positive number"),
    ],
)
def test_runs_bad_arguments_are_usage_errors(store: Path, ip: Any, line: str, message: str):
    make_runs()
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("runs", line)


def test_runs_of_an_experiment_without_runs_is_empty(store: Path):
    frame = mlops.runs()
    assert frame.empty and list(frame.columns) == ["run_id", "name", "status", "start_time"]


def test_compare_shows_differences_and_curves(store: Path, ip: Any):
    slow, fast = make_runs()
    result = ip.run_line_magic("compare", f"{slow} {fast[:10]}")
    assert result.labels == ["slow", "fast"]
    assert dict(zip(result.params.index, result.param_differs, strict=True)) == {
        "layers": False,
        "lr": True,
    }
    assert result.curves["loss"]["fast"] == ([0, 1, 2], [0.9, 0.5, 0.2])
    text = repr(result)
    assert re.search(r"\* lr\s+0\.01\s+0\.1\n", text)
    assert re.search(r"\n    layers\s+2\s+2\n", text)  # equal rows are not starred
    assert "layers" in text and "0.01" in text
    only = mlops.compare(slow, fast, metric="acc")
    assert list(only.curves) == ["acc"]

    first = ip.display_formatter.format(result)[0]["text/html"]
    second = ip.display_formatter.format(only)[0]["text/html"]
    assert "highlighted rows differ" in first and "rgba(255,196,0" in first
    # curves are static SVG (tests/test_tracking_compare_display.py): no plotly.js, ever
    assert first.count("<svg") == 2 and second.count("<svg") == 1
    assert "<script" not in first + second


@pytest.mark.parametrize(
    ("line", "message"),
    [("abc", "at least two run ids"), ("abcdef0123 fedcba9876", "no run with id")],
)
def test_compare_bad_ids_are_usage_errors(store: Path, ip: Any, line: str, message: str):
    make_runs()
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("compare", line)


def test_compare_unknown_metric_is_a_usage_error(store: Path):
    slow, fast = make_runs()
    with pytest.raises(mlops.MLOpsUsageError, match="'nope' was not logged"):
        mlops.compare(slow, fast, metric="nope")


def test_run_summary_renders_as_text_and_svg_chart(store: Path, ip: Any):
    ip.user_ns["mlops"] = mlops
    ip.run_cell("%%track shown --experiment exp\nfor i in range(50):\n    mlops.log(loss=1/(i+1))")
    summary = mlops.tracking.run.last_run()
    assert repr(summary) == (
        "run 'shown' FINISHED in experiment 'exp'\n  metric loss = 0.02 at step 49 (50 values)"
    )
    html = ip.display_formatter.format(summary)[0]["text/html"]
    assert "<svg" in html and "<polyline" in html and "FINISHED" in html


def test_umbrella_magic_reaches_runs(store: Path, ip: Any):
    make_runs()
    assert len(ip.run_line_magic("mlops", "runs --experiment exp")) == 2


def test_live_view_redraws_a_few_times_per_second_then_shows_the_final_run(
    store: Path, ip: Any, monkeypatch: pytest.MonkeyPatch
):
    from IPython.core.displaypub import CapturingDisplayPublisher

    publisher = CapturingDisplayPublisher()
    monkeypatch.setattr(ip, "display_pub", publisher)
    ip.user_ns["mlops"] = mlops
    started = time.monotonic()
    result = ip.run_cell(
        "%%track live --experiment exp\n"
        "import time\n"
        "for i in range(150):\n"
        "    mlops.log(loss=1 / (i + 1))\n"
        "    time.sleep(0.01)\n",
        cell_id="live",
    )
    elapsed = time.monotonic() - started
    assert result.success
    outputs = [
        o for o in publisher.outputs if "jupyter-mlops run" in o["data"].get("text/html", "")
    ]
    first, *updates = outputs
    assert not first["update"] and all(o["update"] for o in updates)
    assert 2 <= len(updates) <= elapsed / display_tracking.LIVE_INTERVAL_S + 2
    assert "FINISHED" in updates[-1]["data"]["text/plain"]
    assert "RUNNING" in first["data"]["text/plain"]
    ids = {o["transient"]["display_id"] for o in outputs}
    assert len(ids) == 1  # one output area, updated in place
