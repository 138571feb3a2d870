"""``%drift`` end to end: HTML and text forms, --save, snapshot REFs, MLflow logging, nbconvert."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import jupyter_mlops as mlops
from jupyter_mlops import GateFailed
from jupyter_mlops.drift import DriftResult, compute_drift
from jupyter_mlops.drift.report_html import drift_document, drift_html
from jupyter_mlops.tracking import active
from jupyter_mlops.tracking.client import mlflow_client
from tests.notebooks import notebook


def wide(rows: int, columns: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {
        f"num_{i:02d}": rng.normal(shift if i % 3 == 0 else 0, 1, rows) for i in range(columns - 5)
    }
    for i in range(5):
        levels = [f"level{j}" for j in range(8)]
        p = np.linspace(1, 1 + shift * (i % 2), 8)
        data[f"cat_{i}"] = rng.choice(levels, rows, p=p / p.sum())
    return pd.DataFrame(data)


def test_html_is_self_contained_small_and_sorted_by_severity() -> None:
    result = compute_drift(wide(20_000, 25, 0.5, 1), wide(20_000, 25, 0.0, 2))
    html = drift_html(result)
    document = drift_document(result)
    for text in (html, document):
        assert "<script" not in text.lower()
        assert not re.search(r"https?://", text)
        assert "<link" not in text.lower() and "@import" not in text
    assert len(document.encode()) < 1_000_000 / 10  # 25 columns: tens of KB, not MB
    assert html.count("<svg") == 25
    order = re.findall(r"<td[^>]*>((?:num|cat)_\d+)</td>", html)
    assert order == [r.column for r in result.by_severity()]
    assert [result.column(c).drifted for c in order[: result.n_drifted]] == [
        True
    ] * result.n_drifted
    assert result.summary() in html.replace("&gt;", ">")
    # many columns stay well under 1 MB too
    many = compute_drift(wide(2000, 300, 0.3, 3), wide(2000, 300, 0.0, 4))
    assert len(drift_document(many).encode()) < 1_000_000


def test_magic_returns_the_result_with_text_and_html(ip: Any) -> None:
    ip.user_ns["train_df"] = wide(3000, 8, 0.0, 5)
    ip.user_ns["live_df"] = wide(3000, 8, 0.6, 6)
    result = ip.run_line_magic("drift", "train_df live_df --columns num_00,num_01,cat_1")
    assert isinstance(result, DriftResult)
    assert [r.column for r in result.results] == ["num_00", "num_01", "cat_1"]
    assert result.reference.label == "train_df" and result.current.label == "live_df"
    data, _ = ip.display_formatter.format(result)
    assert data["text/plain"] == repr(result)
    assert "reference: train_df (3,000 rows)" in data["text/plain"]
    assert "<svg" in data["text/html"] and "train_df" in data["text/html"]
    via_umbrella = ip.run_line_magic("mlops", "drift train_df live_df --method psi,num_00=ks")
    assert via_umbrella.column("num_00").test == "ks" and via_umbrella.column("cat_1").test == "psi"
    thresholds = ip.run_line_magic("drift", "train_df live_df --threshold 0.3,cat_1=0.01")
    assert (
        thresholds.column("cat_1").threshold == 0.01
        and thresholds.column("num_01").threshold == 0.3
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("train_df", "the following arguments are required"),
        ("train_df live_df --fail-on 'share_drifted >'", "cannot read --fail-on"),
        ("train_df live_df --method psi,=ks", "--method: empty item"),
        ("train_df live_df --threshold high", "--threshold: cannot read 'high'"),
        ("train_df live_df --columns nope", "'nope' (not in the reference data)"),
        ("train_df live_df --engine evidently", 'pip install "jupyter-mlops[evidently]"'),
        ("train_df 42", "the current data is a int"),
    ],
)
def test_magic_usage_errors_are_one_line(ip: Any, line: str, message: str) -> None:
    ip.user_ns["train_df"] = wide(100, 6, 0.0, 7)
    ip.user_ns["live_df"] = wide(100, 6, 0.0, 8)
    ip.user_ns["42"] = 42
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("drift", line)
    assert message in str(caught.value) and str(caught.value).startswith("%drift")
    assert "\n" not in str(caught.value)


def test_magic_fail_on_shows_the_report_then_raises(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ip.user_ns["train_df"] = wide(3000, 8, 0.0, 9)
    ip.user_ns["live_df"] = wide(3000, 8, 0.8, 10)
    shown: list[Any] = []
    monkeypatch.setattr(ip.display_pub, "publish", lambda data, **kw: shown.append(data))
    with pytest.raises(
        GateFailed, match=r"gate FAILED: drift train_df vs live_df .*: share_drifted > 0.1 \(value"
    ):
        ip.run_line_magic("drift", 'train_df live_df --fail-on "share_drifted > 0.1"')
    assert len(shown) == 1 and "1 of 8 columns drifted" in shown[0]["text/plain"]
    assert "<svg" in shown[0]["text/html"]


def test_save_writes_html_and_json(isolated_store: Path) -> None:
    result = mlops.drift(wide(1500, 7, 0.0, 11), wide(1500, 7, 0.4, 12), save="reports/weekly")
    html = (isolated_store / "reports" / "weekly.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    data = json.loads((isolated_store / "reports" / "weekly.json").read_text())
    assert data == json.loads(json.dumps(result.to_dict()))
    assert data["share_drifted"] == result.share_drifted
    assert "saved to" in result.links and "saved to" not in repr(result)


def test_snapshot_refs_are_loaded(isolated_store: Path) -> None:
    train = wide(1200, 6, 0.0, 13)
    live = wide(1200, 6, 0.5, 14)
    mlops.snapshot(train, "train")
    mlops.snapshot(live, "live")
    from_refs = mlops.drift("train@v1", "live")
    from_frames = compute_drift(train, live)
    assert from_refs.reference.label == "train@v1" and from_refs.current.label == "live"
    assert [r.statistic for r in from_refs.results] == [r.statistic for r in from_frames.results]


def test_logged_to_the_active_run_on_a_real_sqlite_store(isolated_store: Path) -> None:
    uri = f"sqlite:///{isolated_store / 'mlflow.db'}"
    client = mlflow_client(uri)
    experiment = client.create_experiment("drift-test")
    run_id = client.create_run(experiment).info.run_id
    run = active.ActiveRun(run_id, uri)
    active.push(run)
    try:
        result = mlops.drift(
            wide(2000, 8, 0.0, 15), wide(2000, 8, 0.7, 16), labels=("train", "live")
        )
    finally:
        active.pop(run)
        client.set_terminated(run_id)
    logged = client.get_run(run_id)
    assert logged.data.metrics["drift.share_drifted"] == pytest.approx(result.share_drifted)
    assert logged.data.metrics["drift.n_drifted"] == result.n_drifted
    first = result.results[0]
    assert logged.data.metrics[f"drift.{first.column}.{first.test}"] == pytest.approx(
        first.statistic
    )
    assert logged.data.tags["mlops.drift.reference"] == "train"
    assert logged.data.tags["mlops.drift.drifted"] == str(result.drifted).lower()
    files = sorted(a.path for a in client.list_artifacts(run_id, "drift"))
    assert files == ["drift/train_vs_live.html", "drift/train_vs_live.json"]
    local = Path(client.download_artifacts(run_id, "drift/train_vs_live.json", str(isolated_store)))
    assert json.loads(local.read_text())["n_drifted"] == result.n_drifted
    assert result.links["logged to run"].startswith(run_id)


def test_fail_on_fails_an_executed_notebook(isolated_store: Path) -> None:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = notebook(
        "%load_ext jupyter_mlops",
        "import numpy as np, pandas as pd\n"
        "rng = np.random.default_rng(0)\n"
        "ref = pd.DataFrame({'a': rng.normal(0, 1, 3000), 'b': rng.normal(0, 1, 3000)})\n"
        "cur = pd.DataFrame({'a': rng.normal(1, 1, 3000), 'b': rng.normal(0, 1, 3000)})",
        '%drift ref cur --fail-on "share_drifted >= 0.5"',
        "print('not reached')",
    )
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(isolated_store)}},
    )
    with pytest.raises(CellExecutionError, match="GateFailed: gate FAILED: drift ref vs cur"):
        client.execute()
    outputs = nb.cells[2].outputs
    html = [o for o in outputs if o.get("output_type") == "display_data"]
    assert html and "<svg" in html[0]["data"]["text/html"]
    # the report says the rest: the error is one line, not a traceback through our frames
    (error,) = [o for o in outputs if o.get("output_type") == "error"]
    headline, row, json_report, xml_report = error["traceback"]
    assert headline == "GateFailed: gate FAILED: drift ref vs cur (1 of 1 checks failed)"
    assert row == "  [FAIL] share_drifted >= 0.5  value 0.5        need < 0.5"
    assert json_report.startswith("  report: ") and json_report.endswith(".json")
    assert Path(xml_report.removeprefix("  report: ")).parent.name == "reports"
    assert not [o for o in outputs if o.get("name") == "stderr"]
    assert not nb.cells[3].outputs


def test_broken_columns_head_the_report_in_a_kernel(isolated_store: Path) -> None:
    from nbclient import NotebookClient

    nb = notebook(
        "%load_ext jupyter_mlops\n"
        "import numpy as np, pandas as pd\n"
        "rng = np.random.default_rng(0)\n"
        "ref = pd.DataFrame({'a': rng.normal(0, 1, 3000), 'b': rng.normal(0, 1, 3000),"
        " 'c': rng.integers(0, 50, 3000)})\n"
        "cur = ref.assign(b=np.nan, c=ref['c'].astype(str))",
        "%drift ref cur",
        '%drift ref cur --fail-on "broken_columns > 0"',
    )
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(isolated_store)}},
    )
    client.execute()
    (shown,) = nb.cells[1].outputs
    text, html = shown["data"]["text/plain"], shown["data"]["text/html"]
    assert text.startswith("DriftResult: DATA BROKEN: 2 columns (b, c); no dataset drift")
    assert "BROKEN: b (all values missing in the current data)" in text
    headline = html.split("</div>", 1)[0]
    assert ">broken</span>" in headline and ">ok</span>" not in headline
    assert "DATA BROKEN: 2 columns (b, c)" in headline
    errors = [o for o in nb.cells[2].outputs if o.get("output_type") == "error"]
    assert [e["traceback"][:2] for e in errors] == [
        [
            "GateFailed: gate FAILED: drift ref vs cur (1 of 1 checks failed)",
            "  [FAIL] broken_columns > 0  value 2          need <= 0",
        ]
    ]
