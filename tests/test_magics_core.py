"""%load_ext, %mlops status/doctor, %config MLOps and one-line usage errors in a real shell."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

from jupyter_mlops.config import MLOps
from jupyter_mlops.diagnostics import DoctorReport, Status


def test_load_ext_imports_nothing_heavy() -> None:
    """What makes ``%load_ext`` fast; its time is in tests/benchmarks/bench_load_ext.py."""
    code = (
        "import sys, json\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "ip.run_line_magic('load_ext', 'jupyter_mlops')\n"
        "heavy = [m for m in ('mlflow', 'torch', 'plotly', 'pyarrow', 'pandas', 'evidently',"
        " 'scipy') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'magics': sorted(ip.magics_manager.magics['line'])}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert "mlops" in result["magics"]


def test_status_returns_the_resolved_store(ip: Any, isolated_store: Path) -> None:
    status = ip.run_line_magic("mlops", "status")
    assert isinstance(status, Status)
    assert status.settings.home == isolated_store / ".mlops"
    text = repr(status)
    assert f"sqlite:///{isolated_store}/.mlops/mlflow.db" in text
    assert "experiment    Default" in text
    html = ip.display_formatter.format(status)[0]["text/html"]
    assert "<table" in html and "tracking URI" in html


def test_config_magic_sets_options_and_refuses_bad_values(ip: Any, isolated_store: Path) -> None:
    ip.run_line_magic("config", f"MLOps.home = {str(isolated_store / 'elsewhere')!r}")
    ip.run_line_magic("config", "MLOps.gate_mode = 'warn'")
    status = ip.run_line_magic("mlops", "status")
    assert status.settings.home == isolated_store / "elsewhere"
    assert status.settings.gate_mode == "warn"
    assert status.settings.sources["gate_mode"] == "%config"
    ip.run_line_magic("config", "MLOps.gate_mode = 'sometimes'")  # refused, logged on one line
    assert MLOps.instance().gate_mode == "warn"


def test_display_text_drops_the_html_form(ip: Any) -> None:
    ip.run_line_magic("config", "MLOps.display = 'text'")
    formatted = ip.display_formatter.format(ip.run_line_magic("mlops", "status"))[0]
    assert "text/html" not in formatted
    assert formatted["text/plain"].startswith("jupyter-mlops status")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "%mlops: missing sub-command; choose one of: status, doctor"),
        ("fly", "%mlops: unknown sub-command 'fly'; choose one of: status, doctor"),
        ("status --verbose", "%mlops status: unrecognized arguments: --verbose"),
        ("doctor now", "%mlops doctor: unrecognized arguments: now"),
    ],
)
def test_usage_errors_are_one_line(ip: Any, line: str, message: str, isolated_store: Path) -> None:
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("mlops", line)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_bad_env_value_is_a_usage_error(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_DISPLAY", "loud")
    with pytest.raises(UsageError, match=r"display='loud'.*choose one of: auto, rich, text"):
        ip.run_line_magic("mlops", "status")


def test_doctor_checks_everything_on_a_real_store(ip: Any, isolated_store: Path) -> None:
    report = ip.run_line_magic("mlops", "doctor")
    assert isinstance(report, DoctorReport)
    levels = {c.name: c.level for c in report.checks}
    assert levels == {
        "store writable": "ok",
        "MLflow store opens": "ok",
        "notebook path": "warn",  # a plain shell has no notebook
        "torch importable": "ok",
        "GPUs": "ok",
        "torchrun": "ok",
        "labextension": "ok",
    }
    assert (isolated_store / ".mlops" / "mlflow.db").is_file()
    assert "torch" not in sys.modules or not sys.modules["torch"].cuda.is_initialized()
    assert repr(report).startswith("jupyter-mlops doctor: 6 ok, 1 warning(s), 0 failed")


def test_doctor_reports_an_unreachable_tracking_server(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://nobody@127.0.0.1:1/none")
    report = ip.run_line_magic("mlops", "doctor")
    mlflow_check = next(c for c in report.checks if c.name == "MLflow store opens")
    assert mlflow_check.level == "fail"
    assert "MLFLOW_TRACKING_URI" in mlflow_check.hint
    assert not report


def test_import_alone_gives_html_forms_in_a_kernel(isolated_store: Path) -> None:
    """``import jupyter_mlops as mlops`` without ``%load_ext``: results still render as HTML."""
    from nbclient import NotebookClient

    from tests.notebooks import notebook

    nb = notebook(
        "import jupyter_mlops as mlops\nmlops.status()",
        "import pandas as pd\n"
        "frame = pd.DataFrame({'a': [1.0, 2.0, 3.0] * 50})\n"
        "mlops.drift(frame, frame)",
        "'drift' in get_ipython().magics_manager.magics['line']",
    )
    resources = {"metadata": {"path": str(isolated_store)}}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources=resources).execute()
    status, drift, magics_loaded = (cell.outputs[-1] for cell in nb.cells)
    assert "<table" in status["data"]["text/html"]
    assert "Data drift" in drift["data"]["text/html"]
    assert magics_loaded["data"]["text/plain"] == "False"  # no %load_ext happened
