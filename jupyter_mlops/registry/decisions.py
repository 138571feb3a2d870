"""Where a gate decision is kept: on the model version (or run), and as JSON + JUnit XML reports.

Model version tags hold the latest decision per alias (``mlops.gate.<alias>``: a JSON summary)
and the run of the version gets the full JSON under ``gates/``; ``<home>/reports/`` gets a JSON
file and a JUnit XML file per decision, which CI systems (GitLab, Jenkins, GitHub test
reporters) show natively.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import records
from .results import GateResult

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

TAG_VALUE_MAX = 5000  # MLflow's limit for model version tag values


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "gate"


def stem(result: GateResult) -> str:
    stamp = re.sub(r"[^0-9T]", "", result.at.split("+")[0])  # 20261126T205721134861
    if result.model is not None:
        what = f"{result.model}-v{result.version}" + (f"-to-{result.alias}" if result.alias else "")
    elif result.run_id is not None:
        what = f"run-{result.run_id[:12]}"
    else:  # a decision kept nowhere else (an untracked %drift --fail-on): named by its subject
        what = result.subject
    return f"gate-{slug(what)}-{stamp}"


def summary(result: GateResult) -> str:
    """A compact JSON of the decision that fits in a tag."""
    record = result.record()
    text = json.dumps(record, sort_keys=True)
    if len(text) > TAG_VALUE_MAX:
        record["checks"] = [
            {"name": c["name"][:80], "passed": c["passed"]} for c in record["checks"]
        ]
        text = json.dumps(record, sort_keys=True)[:TAG_VALUE_MAX]
    return text


def junit(result: GateResult) -> str:
    """JUnit XML: one testsuite per decision, one testcase per check."""
    suite = ET.Element(
        "testsuite",
        name=f"jupyter-mlops gate: {result.subject}",
        tests=str(len(result.rows)),
        failures=str(len(result.failures)),
        errors="0",
        skipped="0",
        timestamp=result.at,
    )
    properties = ET.SubElement(suite, "properties")
    for key in ("decision", "model", "version", "alias", "run_id", "previous", "user", "reason"):
        value = getattr(result, key)
        if value is not None:
            ET.SubElement(properties, "property", name=key, value=str(value))
    classname = f"{records.JUNIT_CLASS_PREFIX}{slug(result.model or 'run')}"
    for row in result.rows:
        case = ET.SubElement(suite, "testcase", classname=classname, name=row.name)
        if not row.passed:
            failure = ET.SubElement(
                case,
                "failure",
                message=f"value {row.value_text()}, need {row.threshold}",
                type="GateFailed",
            )
            failure.text = (
                row.detail or f"{row.name}: value {row.value_text()}, need {row.threshold}"
            )
        else:
            ET.SubElement(
                case, "system-out"
            ).text = f"value {row.value_text()}, need {row.threshold}"
    root = ET.Element(
        "testsuites", tests=str(len(result.rows)), failures=str(len(result.failures)), errors="0"
    )
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_reports(home: Path, result: GateResult) -> tuple[str, str]:
    folder = home / records.REPORTS_DIRNAME
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / stem(result)
    json_path, xml_path = base.with_suffix(".json"), base.with_suffix(".xml")
    json_path.write_text(json.dumps(result.record(), indent=2) + "\n", encoding="utf-8")
    xml_path.write_text(junit(result), encoding="utf-8")
    return str(json_path), str(xml_path)


def record_in_mlflow(client: MlflowClient, result: GateResult) -> None:
    """Tags on the model version (or the run, for ``%gate``) and the JSON on the run."""
    text = summary(result)
    if result.model is not None and result.version is not None:
        version = str(result.version)
        tags: dict[str, Any] = {records.TAG_GATE_LAST: text}
        if result.alias:
            tags[records.gate_tag(result.alias)] = text
        for key, value in tags.items():
            client.set_model_version_tag(result.model, version, key, value)
    elif result.run_id is not None:
        client.set_tag(result.run_id, records.TAG_GATE_LAST, text)
    if result.run_id is not None:
        client.log_text(
            result.run_id,
            json.dumps(result.record(), indent=2) + "\n",
            f"{records.GATES_FOLDER}/{stem(result)}.json",
        )
