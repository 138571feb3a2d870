"""Shared fixtures: every test gets its own store, cwd and a clean configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlops.config import OPTIONS, MLOps

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run each test in a fresh folder with no inherited jupyter-mlops settings."""
    for option in OPTIONS.values():
        monkeypatch.delenv(option.env, raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    MLOps.clear_instance()
    yield tmp_path
    MLOps.clear_instance()


@pytest.fixture
def ip() -> Any:
    """An IPython shell with ``%load_ext jupyter_mlops`` done."""
    from IPython.testing.globalipapp import start_ipython

    import jupyter_mlops

    shell = start_ipython()
    jupyter_mlops.load_ipython_extension(shell)
    return shell


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"jupyter_mlops": True}}}
