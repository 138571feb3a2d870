"""Layered configuration: flags > %config > env > pyproject.toml > defaults, and home resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_mlops.config import resolve_settings
from jupyter_mlops.errors import ConfigError


def write_pyproject(folder: Path, body: str) -> None:
    (folder / "pyproject.toml").write_text(f"[tool.jupyter-mlops]\n{body}\n")


def test_defaults_create_home_in_cwd(tmp_path: Path) -> None:
    s = resolve_settings(tmp_path)
    assert s.home == tmp_path / ".mlops"
    assert s.home.is_dir()
    assert s.tracking_uri == f"sqlite:///{tmp_path}/.mlops/mlflow.db"
    assert s.tracking_uri.startswith("sqlite:////")  # absolute path, never the file store
    assert s.snapshot_store == str(tmp_path / ".mlops" / "snapshots")
    assert (s.experiment, s.gate_mode, s.display) == ("Default", "raise", "auto")
    assert s.sources["home"] == "default"


def test_nearest_home_is_found_walking_up(tmp_path: Path) -> None:
    (tmp_path / ".mlops").mkdir()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    s = resolve_settings(deep)
    assert s.home == tmp_path / ".mlops"
    assert s.sources["home"] == "found"
    assert not (deep / ".mlops").exists()


def test_without_create_nothing_is_written(tmp_path: Path) -> None:
    s = resolve_settings(tmp_path, create_home=False)
    assert s.home == tmp_path / ".mlops"
    assert not s.home_exists
    assert not (tmp_path / ".mlops").exists()


def test_precedence_of_every_layer(tmp_path: Path) -> None:
    write_pyproject(tmp_path, 'experiment = "from-pyproject"\ngate_mode = "warn"\ndisplay = "text"')
    env = {"MLOPS_EXPERIMENT": "from-env", "MLOPS_GATE_MODE": "raise"}
    s = resolve_settings(
        tmp_path,
        flags={"experiment": "from-flag", "display": None},
        configured={"experiment": "from-config", "gate_mode": "warn"},
        env=env,
    )
    assert s.experiment == "from-flag"
    assert s.gate_mode == "warn" and s.sources["gate_mode"] == "%config"
    assert s.display == "text" and s.sources["display"] == "pyproject"
    s = resolve_settings(tmp_path, env=env)
    assert s.experiment == "from-env" and s.sources["experiment"] == "env MLOPS_EXPERIMENT"


def test_pyproject_home_is_relative_to_the_pyproject(tmp_path: Path) -> None:
    write_pyproject(tmp_path, 'home = "store"\nsnapshot_store = "memory://bucket/snaps"')
    sub = tmp_path / "notebooks"
    sub.mkdir()
    s = resolve_settings(sub)
    assert s.home == tmp_path / "store"
    assert s.tracking_uri == f"sqlite:///{tmp_path}/store/mlflow.db"
    assert s.snapshot_store == "memory://bucket/snaps"


def test_env_home_and_tracking_uri(tmp_path: Path) -> None:
    env = {"MLOPS_HOME": str(tmp_path / "h"), "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    s = resolve_settings(tmp_path, env=env)
    assert s.home == tmp_path / "h"
    assert s.tracking_uri == "http://127.0.0.1:5000"
    assert s.snapshot_store == str(tmp_path / "h" / "snapshots")


def test_experiment_defaults_to_notebook_stem(tmp_path: Path) -> None:
    s = resolve_settings(tmp_path, notebook=tmp_path / "churn model.ipynb")
    assert s.experiment == "churn model"
    assert s.sources["experiment"] == "notebook"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env": {"MLOPS_GATE_MODE": "maybe"}}, "choose one of: raise, warn"),
        ({"flags": {"display": "fancy"}}, "choose one of: auto, rich, text"),
        ({"configured": {"experiment": " "}}, "must be a non-empty string"),
    ],
)
def test_bad_values_are_one_line_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        resolve_settings(tmp_path, create_home=False, **kwargs)
    assert "\n" not in str(info.value)
    assert not (tmp_path / ".mlops").exists()


def test_unknown_pyproject_key_names_valid_options(tmp_path: Path) -> None:
    write_pyproject(tmp_path, 'hom = "x"')
    with pytest.raises(ConfigError, match=r"unknown option 'hom'.*valid options: home"):
        resolve_settings(tmp_path)


def test_broken_pyproject_is_reported(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.jupyter-mlops\n")
    with pytest.raises(ConfigError, match="fix the TOML syntax"):
        resolve_settings(tmp_path)


def test_unwritable_home_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="writable folder"):
        resolve_settings(tmp_path, env={"MLOPS_HOME": str(blocker / "sub")})
