"""``%promote`` / ``%gate``: truth tables, alias moves, records, warn mode, racing promotions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import jupyter_mlops as mlops
from jupyter_mlops.errors import GateFailed, MLOpsUsageError
from jupyter_mlops.registry.errors import GateRejected, GateWarning
from jupyter_mlops.registry.locks import alias_lock, lock_path
from jupyter_mlops.registry.results import GateResult
from tests.registry_support import client, make_run

pytestmark = pytest.mark.usefixtures("registry_store")

RNG = np.random.default_rng(7)
REFERENCE = pd.DataFrame({"x": RNG.normal(size=400), "y": RNG.normal(size=400)})
SIMILAR = pd.DataFrame({"x": RNG.normal(size=400), "y": RNG.normal(size=400)})
SHIFTED = pd.DataFrame({"x": RNG.normal(size=400) + 3, "y": RNG.normal(size=400) + 3})


def two_versions(name: str, champion_acc: float = 0.90, candidate_acc: float = 0.93) -> None:
    """v1 (holding 'champion') and v2, a better candidate, each from its own run."""
    make_run("champion-run", params={"optimizer": "sgd"}, val_acc=champion_acc, loss=0.3)
    mlops.register(lambda df: df, name)
    assert mlops.promote(name, "champion", "metrics.val_acc > 0.5")
    make_run("candidate-run", params={"optimizer": "adam"}, val_acc=candidate_acc, loss=0.2)
    mlops.register(lambda df: df, name)


def holder(home: Path, name: str, alias: str = "champion") -> Any:
    return client(home).get_registered_model(name).aliases.get(alias)


GATE = {
    "require": ["metrics.val_acc >= 0.9", "params.optimizer == 'adam'"],
    "vs": "champion",
    "min_delta": 0.02,
    "reference": REFERENCE,
    "current": SIMILAR,
}


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({}, None),
        ({"require": ["metrics.val_acc >= 0.95", "params.optimizer == 'adam'"]}, 0),
        ({"require": ["metrics.val_acc >= 0.9", "params.optimizer == 'sgd'"]}, 1),
        ({"min_delta": 0.05}, 2),
        ({"current": SHIFTED}, 3),
        (
            {
                "require": ["metrics.val_f1 >= 0.9", "params.optimizer == 'adam'"],
                "metric": "val_acc",
            },
            0,
        ),
    ],
    ids=["all-pass", "require-fails", "param-fails", "vs-fails", "drift-fails", "missing-metric"],
)
def test_truth_table_alias_moves_only_when_every_check_passes(
    change: dict[str, Any],
    failing: int | None,
    registry_store: Path,
    request: pytest.FixtureRequest,
) -> None:
    name = f"tt-{request.node.callspec.id}"
    two_versions(name)
    arguments = {**GATE, **change}
    if failing is None:
        result = mlops.promote(f"{name}/2", "champion", **arguments)
        assert result and result.moved and result.decision == "promoted" and result.previous == 1
        assert holder(registry_store, name) == 2
        assert list(result.checks["passed"]) == [True] * 5  # 4 checks + the compare-and-set
        return
    with pytest.raises(GateFailed) as info:
        mlops.promote(f"{name}/2", "champion", **arguments)
    result = info.value.result  # type: ignore[attr-defined]
    assert isinstance(result, GateResult) and not result and not result.moved
    assert [row.passed for row in result.rows] == [i != failing for i in range(4)]
    assert holder(registry_store, name) == 1  # unchanged
    failed = result.rows[failing]
    assert failed.name in str(info.value)
    if request.node.callspec.id == "missing-metric":
        assert failed.value is None and "the run has no metrics.val_f1" in failed.detail


def test_vs_uses_the_first_required_metric_with_its_direction() -> None:
    two_versions("vs-loss")  # champion loss 0.3, candidate 0.2: lower is better
    passed = mlops.promote(
        "vs-loss/2", "champion", "metrics.loss <= 0.25", vs="champion", min_delta=0.1, dry_run=True
    )
    assert passed and passed.rows[1].name == "metrics.loss vs champion (v1)"
    assert passed.rows[1].threshold.startswith("<= 0.2 ")
    with pytest.raises(GateFailed, match=r"metrics\.loss vs champion"):
        mlops.promote(
            "vs-loss/2",
            "champion",
            "metrics.loss <= 0.25",
            vs="champion",
            min_delta=0.15,
            dry_run=True,
        )


def test_dry_run_evaluates_records_and_moves_nothing(registry_store: Path) -> None:
    two_versions("dry")
    result = mlops.promote("dry/2", "champion", "metrics.val_acc > 0.9", dry_run=True)
    assert result and not result.moved and result.decision == "dry-run"
    assert holder(registry_store, "dry") == 1
    assert len(result.reports) == 2 and all(Path(p).exists() for p in result.reports)
    assert "dry run, nothing moved" in repr(result)


def test_warn_only_and_gate_mode_warn_return_the_failed_result(
    registry_store: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    two_versions("warn")
    with pytest.warns(GateWarning, match="metrics.val_acc >= 0.99"):
        result = mlops.promote("warn/2", "champion", "metrics.val_acc >= 0.99", warn_only=True)
    assert not result and result.decision == "rejected" and holder(registry_store, "warn") == 1
    monkeypatch.setenv("MLOPS_GATE_MODE", "warn")
    with pytest.warns(GateWarning):
        assert not mlops.gate("metrics.val_acc >= 0.99")


def test_every_decision_is_recorded_on_the_version_and_as_json_and_junit(
    registry_store: Path,
) -> None:
    two_versions("rec")
    with pytest.raises(GateFailed):
        mlops.promote(
            "rec/2",
            "champion",
            ["metrics.val_acc >= 0.99", "metrics.loss < 1"],
            reference=REFERENCE,
            current=SIMILAR,
            reason="nightly retrain",
        )
    store = client(registry_store)
    tags = store.get_model_version("rec", "2").tags
    last = json.loads(tags["mlops.gate.last"])
    assert last == json.loads(tags["mlops.gate.champion"])
    assert (last["decision"], last["passed"], last["reason"]) == (
        "rejected",
        False,
        "nightly retrain",
    )
    assert last["user"] and last["at"] and last["previous"] == 1
    assert [c["passed"] for c in last["checks"]] == [False, True, True]
    assert (
        last["checks"][0]["value"] == pytest.approx(0.93)
        and last["checks"][0]["threshold"] == ">= 0.99"
    )
    run_id = store.get_model_version("rec", "2").run_id
    artifacts = [a.path for a in store.list_artifacts(run_id, "gates")]
    assert len(artifacts) == 1 and artifacts[0].endswith(".json")

    reports = sorted((registry_store / "reports").glob("gate-rec-v2-to-champion-*"))
    assert [p.suffix for p in reports] == [".json", ".xml"]
    assert json.loads(reports[0].read_text())["checks"] == last["checks"]
    root = ET.parse(reports[1]).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert (root.get("tests"), root.get("failures")) == ("3", "1")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    cases = suite.findall("testcase")
    assert [c.find("failure") is not None for c in cases] == [True, False, False]
    assert cases[0].get("name") == "metrics.val_acc >= 0.99"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["decision"] == "rejected" and props["reason"] == "nightly retrain"

    passed = mlops.promote("rec/2", "champion", "metrics.val_acc >= 0.9")
    assert (
        json.loads(store.get_model_version("rec", "2").tags["mlops.gate.last"])["decision"]
        == "promoted"
    )
    assert ET.parse(passed.reports[1]).getroot().get("failures") == "0"


def test_bad_input_names_what_is_missing_and_moves_nothing(registry_store: Path) -> None:
    two_versions("bad")
    before = sorted((registry_store / "reports").glob("gate-bad-*"))
    cases = [
        (("nope/1", "champion"), {"require": "metrics.a > 1"}, "no registered model 'nope'"),
        (("bad/9", "champion"), {"require": "metrics.a > 1"}, "no version 9 (versions: 1, 2)"),
        (
            ("bad/2", "champion"),
            {"require": "metrics.a > 1", "vs": "prod"},
            "no alias 'prod' (aliases: champion)",
        ),
        (("bad/2", "champion"), {"require": "metrics.val_acc >>= 1"}, "cannot read --require"),
        (("bad/2", "latest"), {"require": "metrics.val_acc > 0"}, "alias 'latest' is not valid"),
        (("bad/2", "champion"), {}, "nothing to check"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(MLOpsUsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            mlops.promote(*args, **kwargs)
    assert holder(registry_store, "bad") == 1
    assert sorted((registry_store / "reports").glob("gate-bad-*")) == before


def test_gate_checks_a_run_with_snapshot_refs(registry_store: Path) -> None:
    ref = mlops.snapshot(REFERENCE, "gate_ref").ref
    cur = mlops.snapshot(SHIFTED, "gate_cur").ref
    run_id = make_run("ci", val_acc=0.91)
    ok = mlops.gate("metrics.val_acc > 0.9")
    assert ok and ok.run_id == run_id and ok.subject == "run ci" and ok.decision == "passed"
    with pytest.raises(GateFailed) as info:
        mlops.gate(
            "metrics.val_acc > 0.9", run=run_id, reference=ref, current=cur, max_drift_share=0.4
        )
    drift = info.value.result.rows[1]  # type: ignore[attr-defined]
    assert (
        drift.name == f"drift {ref} -> {cur}" and drift.value == 1.0 and drift.threshold == "<= 0.4"
    )
    assert "2 of 2 columns drifted: x, y" in drift.detail
    tag = json.loads(client(registry_store).get_run(run_id).data.tags["mlops.gate.last"])
    assert tag["decision"] == "failed"


def test_promote_and_gate_magics(ip: Any, registry_store: Path) -> None:
    two_versions("magic")
    ip.user_ns["ref_df"], ip.user_ns["cur_df"] = REFERENCE, SIMILAR
    result = ip.run_line_magic(
        "promote",
        'magic/2 --to champion --require "metrics.val_acc >= 0.9" '
        "--require \"params.optimizer == 'adam'\" "
        "--vs champion --min-delta 0.01 --reference ref_df --current cur_df --reason weekly check",
    )
    assert result and result.moved and holder(registry_store, "magic") == 2
    assert [r.name for r in result.rows][:3] == [
        "metrics.val_acc >= 0.9",
        "params.optimizer == 'adam'",
        "metrics.val_acc vs champion (v1)",
    ]
    assert result.reason == "weekly check"
    html = ip.display_formatter.format(result)[0]["text/html"]
    assert html.count(">ok</span>") == 5 and "gate PASSED" in html

    executed = ip.run_cell('%promote magic/1 --to champion --require "metrics.val_acc >= 0.95"')
    error = executed.error_in_exec
    assert isinstance(error, GateRejected)
    lines = error._render_traceback_()
    assert lines[0].startswith("GateFailed: gate FAILED: magic v1 -> champion")
    assert any("[FAIL] metrics.val_acc >= 0.95" in line for line in lines)
    assert holder(registry_store, "magic") == 2

    warned = ip.run_line_magic("gate", '"metrics.val_acc >= 0.99" --warn-only')
    assert not warned and warned.decision == "failed"
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=r"^%promote: cannot read --require"):
        ip.run_line_magic("promote", 'magic/2 --to champion --require "metrics.val_acc >"')
    with pytest.raises(UsageError, match=r"%promote: .*--to"):
        ip.run_line_magic("promote", "magic/2")


def test_repr_is_deterministic() -> None:
    two_versions("repr")
    first = mlops.promote("repr/2", "staging", "metrics.val_acc >= 0.9", dry_run=True)
    second = mlops.promote("repr/2", "staging", "metrics.val_acc >= 0.9", dry_run=True)
    assert first.at != second.at and repr(first) == repr(second)
    assert repr(first).splitlines() == [
        "gate PASSED: repr v2 -> staging (dry run, nothing moved)",
        "  [pass] metrics.val_acc >= 0.9  value 0.93       need >= 0.9",
    ]


def test_the_lock_of_a_killed_process_is_free_at_once(registry_store: Path) -> None:
    holder_code = (
        "import sys, signal; from pathlib import Path\n"
        "from jupyter_mlops.registry.locks import alias_lock\n"
        "with alias_lock(Path(sys.argv[1]), 'stale', 'champion', 'dead', timeout=5):\n"
        "    print('held', flush=True); signal.pause()\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", holder_code, str(registry_store)], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None and owner.stdout.readline().strip() == "held"
    with (
        pytest.raises(mlops.MLOpsError, match=r"is being promoted by dead \(pid"),
        alias_lock(registry_store, "stale", "champion", "me", timeout=0.2),
    ):
        pass
    owner.kill()
    owner.wait(timeout=30)
    path = lock_path(registry_store, "stale", "champion")
    assert path.exists()  # left behind by the killed owner, and free
    with alias_lock(registry_store, "stale", "champion", "me", timeout=2):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert path.read_text() == ""  # no owner named once released


RACER = """
import json, sys
import jupyter_mlops as mlops
from jupyter_mlops.errors import GateFailed
from jupyter_mlops.context import current_settings
from jupyter_mlops.registry import gates
from jupyter_mlops.tracking.client import mlflow_client
mlflow_client(current_settings().tracking_uri)  # warm: mlflow imported, store open
real_lock = gates.alias_lock

def announced_lock(*args, **kwargs):
    print("waiting", flush=True)  # the holder is read; the lock comes next
    return real_lock(*args, **kwargs)

gates.alias_lock = announced_lock
print("ready", flush=True)
try:
    result = mlops.promote(sys.argv[1], "champion", "metrics.val_acc > 0.5")
except GateFailed as failed:
    result = failed.result
print(json.dumps({"version": result.version, "moved": result.moved, "previous": result.previous,
                  "rows": [[r.name, r.passed] for r in result.rows]}))
"""


def test_racing_promotions_in_two_processes_cannot_both_win(
    registry_store: Path,
    tmp_path: Path,
) -> None:
    make_run("race-run", val_acc=0.9)
    for _ in range(2):
        mlops.register(lambda df: df, "race")
    env = {**os.environ, "MLOPS_HOME": str(registry_store)}
    # Hold the alias lock ourselves so both racers read the holder before either can move it.
    with alias_lock(registry_store, "race", "champion", "test"):
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", RACER, f"race/{v}"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for v in (1, 2)
        ]
        for racer in racers:
            assert racer.stdout is not None
            assert racer.stdout.readline().strip() == "ready"
            assert racer.stdout.readline().strip() == "waiting"  # past reading the holder
        assert holder(registry_store, "race") is None
    outcomes = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err[-2000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    winners = [o for o in outcomes if o["moved"]]
    losers = [o for o in outcomes if not o["moved"]]
    assert len(winners) == 1 and len(losers) == 1
    assert holder(registry_store, "race") == winners[0]["version"]
    assert losers[0]["rows"][-1] == ["champion unchanged since the gate started", False]
    assert winners[0]["previous"] is None and losers[0]["previous"] == winners[0]["version"]
    decisions = [
        json.loads(p.read_text())["decision"]
        for p in (registry_store / "reports").glob("gate-race-*.json")
    ]
    assert sorted(decisions) == ["promoted", "rejected"]


def test_gate_on_a_run_can_compare_with_an_alias_holder() -> None:
    two_versions("gate-vs")  # champion v1 has val_acc 0.90
    run_id = make_run("retrain", val_acc=0.95)
    result = mlops.gate("metrics.val_acc > 0.9", vs="gate-vs@champion", min_delta=0.03)
    assert result and result.run_id == run_id
    assert result.rows[1].name == "metrics.val_acc vs gate-vs@champion (v1)"
    with pytest.raises(GateFailed, match="vs gate-vs@champion"):
        mlops.gate("metrics.val_acc > 0.9", vs="gate-vs@champion", min_delta=0.1)
    with pytest.raises(MLOpsUsageError, match="name the holder as MODEL@ALIAS"):
        mlops.gate("metrics.val_acc > 0.9", vs="champion")


@pytest.mark.parametrize(
    "text",
    ["(" * 1000 + "metrics.val_acc > 0" + ")" * 1000, "not " * 1000 + "metrics.val_acc > 0"],
    ids=["parentheses", "nots"],
)
def test_a_require_nested_a_thousand_deep_is_a_one_line_usage_error(text: str) -> None:
    from jupyter_mlops.registry.checks import MAX_DEPTH, parse

    with pytest.raises(MLOpsUsageError, match=f"nested more than {MAX_DEPTH} levels deep") as info:
        parse(text)
    assert "\n" not in str(info.value) and len(str(info.value)) < 1000
    assert parse("(" * MAX_DEPTH + "metrics.val_acc > 0" + ")" * MAX_DEPTH)
