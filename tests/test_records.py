"""One records module: every recorded name is spelled once, and readers use fields, not labels."""

from __future__ import annotations

import ast
import json
import re
import warnings
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

import jupyter_mlops as mlops
from jupyter_mlops import records
from jupyter_mlops.context import current_settings
from jupyter_mlops.lineage.graph import Lineage
from jupyter_mlops.registry.errors import GateWarning
from jupyter_mlops.tracking.client import mlflow_client
from tests.server_support import identity

PACKAGE = Path(records.__file__).parent
TAG_SHAPE = re.compile(r"mlops\.[a-z_]+(\.[a-z_]*)*")  # mlops.notebook, mlops.gate., ...
# The same file name for something that is not an MLflow record: a distributed job's folder.
NOT_RECORDS = {("distributed/job.py", records.CELL_ARTIFACT)}


def recorded_names() -> set[str]:
    """Every string constant records.py defines at module level (tags, paths, fields)."""
    tree = ast.parse(Path(records.__file__).read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets)
        ):
            names.add(node.value.value)
    return names


def literals(source: str) -> list[str]:
    """The string literals of a module (f-string pieces included), docstrings left out."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_every_recorded_name_is_spelled_only_in_records() -> None:
    # Names short and common enough to be other things too ("drift", "files", "training") are
    # checked by their shape only where they are tags; the distinctive ones everywhere.
    distinctive = {n for n in recorded_names() if "." in n or "_" in n or n.startswith("b3")}
    assert {"mlops.notebook", "mlops.superseded_by", "cell.py", "snapshot.id"} <= distinctive
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        if where == "records.py" or where.startswith("labextension/"):
            continue
        for text in literals(path.read_text(encoding="utf-8")):
            if (where, text) in NOT_RECORDS:
                continue
            if text in distinctive or TAG_SHAPE.fullmatch(text):
                found.append(f"{where}: {text!r}")
    assert found == []


def test_mlflow_digest_is_defined_once() -> None:
    defining = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "def mlflow_digest" in path.read_text(encoding="utf-8")
    ]
    assert defining == ["records.py"]


def test_snapshot_manifests_are_read_only_inside_snapshots() -> None:
    readers = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if ".manifest(" in path.read_text(encoding="utf-8")
    ]
    assert readers and all(where.startswith("snapshots/") for where in readers), readers


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(200, 3)), columns=["x0", "x1", "x2"])
    production = train + 3.0
    return train, production


def relations(lineage: Lineage) -> set[tuple[str, str, str]]:
    labels = {n.key: n.label for n in lineage.nodes}
    return {(labels[e.source], labels[e.target], e.relation) for e in lineage.edges}


def reword_recorded_checks(version_name: str, number: int) -> int:
    """Give every recorded check of the version a new display name, everywhere it is kept."""
    client = mlflow_client(current_settings().tracking_uri)
    version = client.get_model_version(version_name, str(number))
    run = client.get_run(version.run_id)
    folder = Path(unquote(urlparse(run.info.artifact_uri).path)) / records.GATES_FOLDER
    reworded = 0
    for path in folder.glob("*.json"):
        decision = json.loads(path.read_text(encoding="utf-8"))
        for i, check in enumerate(decision["checks"]):
            check["name"] = f"check number {i} (reworded)"
            reworded += 1
        path.write_text(json.dumps(decision), encoding="utf-8")
    for key, value in version.tags.items():
        if key.startswith(records.TAG_GATE_PREFIX):
            decision = json.loads(value)
            for i, check in enumerate(decision["checks"]):
                check["name"] = f"check number {i} (reworded)"
            client.set_model_version_tag(version_name, str(number), key, json.dumps(decision))
    return reworded


def test_lineage_links_a_drift_check_by_its_fields_not_its_label() -> None:
    train, production = frames()
    with mlops.track("train"):
        mlops.snapshot(train, "train")
        mlops.log(val_acc=0.95)
    mlops.register(identity, "net")
    mlops.snapshot(production, "production")
    with mlops.track("monitor"):
        mlops.drift("train@v1", "production@v1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GateWarning)
        blocked = mlops.promote(
            "net/1", "production", reference="train@v1", current="production@v1", warn_only=True
        )
    (drift_row,) = blocked.rows[:1]
    assert drift_row.kind == records.CHECK_KIND_DRIFT
    assert drift_row.inputs == ("train@v1", "production@v1")
    assert reword_recorded_checks("net", 1) >= 1

    links = relations(mlops.lineage("net/1"))
    gate = "net v1 -> production"
    assert ("net/1", gate, "gate decision") in links
    assert ("train@v1", gate, "drift check") in links
    assert ("production@v1", gate, "drift check") in links
    assert ("train@v1 vs production@v1", gate, "same comparison") in links
