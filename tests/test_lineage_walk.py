"""Lineage over a real store: every hop of snapshot -> run -> model -> drift -> gate, both ways."""

from __future__ import annotations

import json
import re
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from pandas.testing import assert_frame_equal

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.display.lineage import lineage_html, lineage_svg
from jupyter_mlops.errors import MLOpsUsageError
from jupyter_mlops.lineage.graph import Lineage
from jupyter_mlops.tracking.client import mlflow_client


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(300, 3)), columns=["x0", "x1", "x2"])
    train["label"] = (train.x0 > 0).astype("int64")
    production = train.copy()
    production[["x0", "x1", "x2"]] += 3.0
    return train, production


@pytest.fixture
def flow() -> dict[str, Any]:
    """The end-to-end flow of the tour, through the Python API."""
    train, production = frames()
    with mlops.track("train") as run:
        mlops.snapshot(train, "train")
        mlops.log(val_acc=0.95)
    version = mlops.register(torch.nn.Linear(3, 2), "net")
    mlops.snapshot(production, "production")
    with mlops.track("monitor") as monitor:
        drift = mlops.drift("train@v1", "production@v1")
    with mlops.track("unrelated"):
        mlops.snapshot(production, "production")  # a run that only read production data
    gate = mlops.promote("net/1", "champion", "metrics.val_acc >= 0.9")
    blocked = mlops.promote(
        "net/1",
        "production",
        reference="train@v1",
        current="production@v1",
        warn_only=True,
    )
    assert gate and not blocked and drift.drifted
    return {"run": run.run_id, "monitor": monitor.run_id, "version": version}


def kinds(lineage: Lineage) -> dict[str, list[str]]:
    return {
        kind: [n.label for n in lineage.of_kind(kind)]
        for kind in ("snapshot", "run", "model", "drift", "gate")
    }


def relations(lineage: Lineage) -> set[tuple[str, str, str]]:
    labels = {n.key: n.label for n in lineage.nodes}
    return {(labels[e.source], labels[e.target], e.relation) for e in lineage.edges}


def test_from_model_alias_every_hop_upstream_and_downstream(flow: dict[str, Any]) -> None:
    found = mlops.lineage("net@champion")
    assert kinds(found) == {
        "snapshot": ["production@v1", "train@v1"],
        "run": ["train"],
        "model": ["net/1"],
        "drift": ["train@v1 vs production@v1"],
        "gate": ["net v1 -> champion", "net v1 -> production"],
    }
    links = relations(found)
    assert ("train@v1", "train", "saved in") in links
    assert ("train", "net/1", "registered") in links
    assert ("net/1", "train@v1 vs production@v1", "drift of its input data") in links
    assert ("train@v1", "train@v1 vs production@v1", "compared") in links
    assert ("production@v1", "train@v1 vs production@v1", "compared") in links
    assert ("net/1", "net v1 -> champion", "gate decision") in links
    assert ("train@v1", "net v1 -> production", "drift check") in links
    assert ("train@v1 vs production@v1", "net v1 -> production", "same comparison") in links
    assert found.subject == "model:net/1"
    gates = {n.label: n.attrs for n in found.decisions}
    assert gates["net v1 -> champion"]["decision"] == "promoted"
    assert gates["net v1 -> production"]["passed"] is False
    assert found.node("model:net/1").attrs["aliases"] == ["champion"]
    assert "DRIFTED" in found.drift_reports[0].detail


def test_from_snapshot_finds_runs_models_and_checks_downstream(flow: dict[str, Any]) -> None:
    found = mlops.lineage("train@v1")
    assert found.subject.startswith("snapshot:")
    assert kinds(found)["run"] == ["train", "monitor"]
    assert kinds(found)["model"] == ["net/1"]
    assert kinds(found)["drift"] == ["train@v1 vs production@v1"]
    assert sorted(kinds(found)["gate"]) == ["net v1 -> champion", "net v1 -> production"]
    links = relations(found)
    assert ("train@v1", "monitor", "loaded by") in links
    assert ("monitor", "train@v1 vs production@v1", "logged") in links
    # production@v1 was read by a run with no model: it shows its runs and nothing more
    production = mlops.lineage("production@v1")
    assert kinds(production)["run"] == ["monitor", "unrelated"]
    assert kinds(production)["model"] == []


def test_from_run_id_and_from_result_objects_agree(flow: dict[str, Any]) -> None:
    by_id = mlops.lineage(flow["run"])
    by_version = mlops.lineage(flow["version"])
    by_ref = mlops.lineage("net/1")
    assert by_id.subject == f"run:{flow['run']}"
    assert {n.key for n in by_id.nodes} == {n.key for n in by_version.nodes}
    assert by_version.to_json()["nodes"] == by_ref.to_json()["nodes"]
    assert by_version.query == "net/1"


def test_text_json_and_svg_forms(flow: dict[str, Any]) -> None:
    found = mlops.lineage("net@champion")
    text = repr(found)
    assert text == repr(mlops.lineage("net@champion"))  # deterministic
    assert text.splitlines()[0] == "lineage of net@champion (model net/1)"
    # each run's id, to copy into mlops.reproduce; each decision's time, in the order made
    (train_line,) = [line for line in text.splitlines() if line.startswith("  run ")]
    assert f"id {flow['run']}, FINISHED" in train_line
    gate_lines = [line for line in text.splitlines() if line.startswith("  gate ")]
    times = [re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", g) for g in gate_lines]
    assert all(times) and len(gate_lines) == 2
    stamps = [t.group(0) for t in times if t]
    assert stamps == sorted(stamps)
    assert "net v1 -> champion" in gate_lines[0] and "net v1 -> production" in gate_lines[1]
    assert "UTC PASSED, promoted" in gate_lines[0] and "UTC FAILED, rejected" in gate_lines[1]
    assert " train@v1 -> train  (saved in)" in text
    data = json.loads(json.dumps(found.to_json()))
    ids = {n["id"] for n in data["nodes"]}
    assert f"run:{flow['run']}" in ids
    assert all(e["source"] in ids and e["target"] in ids for e in data["edges"])
    assert {n["kind"] for n in data["nodes"]} == {"snapshot", "run", "model", "drift", "gate"}
    svg = lineage_svg(found)
    assert svg.startswith("<svg") and svg.count("<rect") == len(found.nodes)
    assert f">id {flow['run'][:8]}, FINISHED" in svg  # the box shows the id's prefix
    assert len(re.findall(r">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC (?:PASSED|FAILED)", svg)) == 2
    assert svg.count("marker-end=") == len(found.edges)
    html = lineage_html(found)
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")


def test_magic_returns_lineage_and_renders_html(flow: dict[str, Any], ip: Any) -> None:
    found = ip.run_line_magic("lineage", "net@champion")
    assert found.subject == "model:net/1"
    assert ip.run_line_magic("mlops", "lineage train@v1").subject.startswith("snapshot:")
    data, _ = ip.display_formatter.format(found)
    assert "<svg" in data["text/html"] and data["text/plain"] == repr(found)


def test_plain_mlflow_run_degrades_gracefully() -> None:
    settings = current_settings()
    mlflow_client(settings.tracking_uri)  # creates the store
    mlflow.set_tracking_uri(settings.tracking_uri)
    with mlflow.start_run(run_name="plain") as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_metric("loss", 1.0)
    found = mlops.lineage(run.info.run_id)
    assert [n.label for n in found.nodes] == ["plain"]
    assert "not a %%track run" in found.runs[0].detail
    assert any("was not opened by %%track" in note for note in found.notes)
    assert found.edges == ()
    assert "<svg" in lineage_html(found)
    again = mlops.reproduce(run.info.run_id)
    assert again.source is None and dict(again.params) == {"alpha": "0.5"} and not again.data
    assert "no cell source was recorded" in repr(again)


def test_unknown_objects_are_usage_errors(flow: dict[str, Any], ip: Any) -> None:
    with pytest.raises(MLOpsUsageError, match="no snapshot, run id or registered model"):
        mlops.lineage("nothing-here")
    with pytest.raises(MLOpsUsageError, match="no alias"):
        mlops.lineage("net/1@nope".replace("/1", ""))
    with pytest.raises(MLOpsUsageError, match="cannot show the lineage of a int"):
        mlops.lineage(3)
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="%lineage"):
        ip.run_line_magic("lineage", "nothing-here")


def test_reproduce_restores_identical_data_source_and_params() -> None:
    train, _ = frames()
    train["city"] = pd.Categorical(["a", "b", "c"] * 100)
    cell = 'mlops.snapshot(train, "train")'
    with mlops.track("fit", params={"lr": 0.1}, source=cell) as run:
        exec(cell)
    train.loc[0, "x0"] = 99.0  # the notebook's frame changes afterwards; the snapshot does not
    mlops.snapshot(train, "train")  # and the name now points at v2
    again = mlops.reproduce(run.run_id)
    assert list(again.data) == ["train@v1"]
    restored = again.data["train@v1"]
    expected, _ = frames()
    expected["city"] = pd.Categorical(["a", "b", "c"] * 100)
    assert_frame_equal(restored, expected)
    assert again.params == {"lr": "0.1"}
    assert again.source == cell
    assert repr(again).startswith("reproduce run 'fit' of experiment 'Default'")


def test_drift_checked_for_a_model_is_on_its_version_and_in_its_lineage() -> None:
    """``%drift ... --model`` records the verdict on the version, with or without a run."""
    train, production = frames()
    with mlops.track("fit"):
        mlops.snapshot(train, "base")
        mlops.log(val_acc=0.9)
    mlops.register(torch.nn.Linear(3, 2), "scorer")
    with mlops.track("watch") as watch:
        logged = mlops.drift(train, production, labels=("base", "live"), model="scorer/1")
    quick = mlops.drift(production, production, labels=("live", "live"), model="scorer/1")
    assert logged.links["checked for model"] == "scorer/1" and not quick.drifted

    client = mlflow_client(current_settings().tracking_uri)
    tags = client.get_model_version("scorer", "1").tags
    recorded = json.loads(tags["mlops.drift.base_vs_live"])
    assert (recorded["run_id"], recorded["drifted"]) == (watch.run_id, True)
    assert json.loads(tags["mlops.drift.live_vs_live"])["run_id"] is None
    assert client.get_run(watch.run_id).data.tags["mlops.drift.model"] == "scorer/1"

    found = mlops.lineage("scorer/1")
    links = relations(found)
    assert ("scorer/1", "base vs live", "drift check") in links
    assert ("scorer/1", "live vs live", "drift check") in links
    logged_node = next(n for n in found.of_kind("drift") if n.label == "base vs live")
    assert logged_node.attrs["run_id"] == watch.run_id  # the report logged in the run


def test_drift_for_an_unknown_model_is_a_usage_error_before_any_work() -> None:
    train, _ = frames()
    with pytest.raises(MLOpsUsageError, match="no registered model 'ghost'"):
        mlops.drift(train, train, model="ghost@champion")
    with pytest.raises(MLOpsUsageError, match="NAME/VERSION"):
        mlops.drift(train, train, model="ghost/one")
