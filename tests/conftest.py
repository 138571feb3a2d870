"""Shared fixtures: every test gets its own store, cwd and a clean configuration."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlops.config import OPTIONS, MLOps

pytest_plugins = ("pytest_jupyter.jupyter_server",)

# Temporary folders live under the repository (numbered per run, safe for concurrent runs), away
# from any .mlops/ store that /tmp may hold: the store is found by walking up from the cwd.
TEMP_ROOT = Path(__file__).resolve().parent.parent / ".pytest-tmp"
TEMP_ROOT.mkdir(exist_ok=True)
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", str(TEMP_ROOT))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Tests rely on finding no project store above their temporary folders."""
    base = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    stray = next((p / ".mlops" for p in base.parents if (p / ".mlops").is_dir()), None)
    if stray is not None:
        raise pytest.UsageError(f"a stray store {stray} sits above the test folders; remove it")


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run each test in a fresh folder with no inherited jupyter-mlops settings.

    The whole environment is restored afterwards: ``mlflow.set_tracking_uri`` writes
    MLFLOW_TRACKING_URI into it, and the kernels of later notebook tests would inherit it.
    """
    saved_environment = dict(os.environ)
    for option in OPTIONS.values():
        monkeypatch.delenv(option.env, raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    MLOps.clear_instance()
    yield tmp_path
    MLOps.clear_instance()
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        mlflow.set_tracking_uri(None)  # its global, and the env var it sets
    os.environ.clear()
    os.environ.update(saved_environment)


@pytest.fixture
def ip() -> Any:
    """An IPython shell with ``%load_ext jupyter_mlops`` done."""
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    import jupyter_mlops

    start_ipython()  # creates the global test shell once; later calls return None
    shell = get_ipython()
    shell.display_formatter.formatters["text/html"].enabled = True  # as in a kernel
    shell.config.pop("MLOps", None)  # %config in an earlier test merged into the global shell
    jupyter_mlops.load_ipython_extension(shell)
    return shell


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"jupyter_mlops": True}}}
