"""torch is an optional extra: installing jupyter-mlops never replaces a user's own torch build."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def requirement_names(specs: list[str]) -> dict[str, str]:
    return {re.split(r"[<>=!~\[; ]", s, maxsplit=1)[0].lower(): s for s in specs}


def test_torch_is_an_unbounded_optional_extra_included_in_test() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert "torch" not in requirement_names(project["dependencies"])
    extras = project["optional-dependencies"]
    torch_spec = requirement_names(extras["distributed"])["torch"]
    assert "<" not in torch_spec and "==" not in torch_spec, torch_spec
    own = [r for r in extras["test"] if r.startswith("jupyter_mlops[")]
    assert len(own) == 1 and "distributed" in own[0].split("[")[1].rstrip("]").split(","), own


def test_distributed_without_torch_says_how_to_install_it(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails, as when not installed
    with pytest.raises(UsageError) as raised:
        ip.run_cell_magic("distributed", "-n 2", "result = 1\n")
    message = str(raised.value)
    assert "\n" not in message
    assert "needs torch" in message and 'pip install "jupyter-mlops[distributed]"' in message


def test_doctor_without_torch_says_how_to_install_it(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    report = ip.run_line_magic("mlops", "doctor")
    text = repr(report)
    assert "not installed: %%distributed needs it" in text
    assert 'pip install "jupyter-mlops[distributed]"' in text
