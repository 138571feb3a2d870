"""Configuration: one ``MLOps`` configurable and the layered resolution of every option.

Precedence, highest first: magic flags > ``%config MLOps.<option>`` > environment variables >
``[tool.jupyter-mlops]`` in the nearest ``pyproject.toml`` > defaults. The kernel and the server
extension both call :func:`resolve_settings`, so the sidebar and the notebook see one store.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets import TraitError, Unicode, validate
from traitlets.config import SingletonConfigurable

from .errors import ConfigError

HOME_DIRNAME = ".mlops"
PYPROJECT_TABLE = "jupyter-mlops"


@dataclass(frozen=True)
class Option:
    name: str
    env: str
    help: str
    choices: tuple[str, ...] = ()


OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option("home", "MLOPS_HOME", "Project store folder (default: nearest .mlops/ walking up)."),
        Option(
            "tracking_uri",
            "MLFLOW_TRACKING_URI",
            "MLflow tracking URI (default: sqlite:///<home>/mlflow.db).",
        ),
        Option("experiment", "MLOPS_EXPERIMENT", "MLflow experiment (default: notebook stem)."),
        Option(
            "snapshot_store",
            "MLOPS_SNAPSHOT_STORE",
            "Snapshot store: a folder or an fsspec URL (default: <home>/snapshots).",
        ),
        Option(
            "gate_mode",
            "MLOPS_GATE_MODE",
            "What a failed gate does: raise GateFailed, or warn.",
            ("raise", "warn"),
        ),
        Option(
            "display",
            "MLOPS_DISPLAY",
            "How results render: auto, rich (HTML) or text.",
            ("auto", "rich", "text"),
        ),
    )
}

DEFAULTS: dict[str, str] = {"gate_mode": "raise", "display": "auto"}
MLFLOW_EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"  # the experiment when MLOPS_EXPERIMENT is unset


def check_value(option: str, value: Any, origin: str) -> str:
    """Validate one option value; raise a one-line :class:`ConfigError` naming the fix."""
    spec = OPTIONS.get(option)
    if spec is None:
        raise ConfigError(
            f"unknown option {option!r} ({origin}); valid options: {', '.join(OPTIONS)}"
        )
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{option} must be a non-empty string ({origin}), got {value!r}")
    if spec.choices and value not in spec.choices:
        raise ConfigError(
            f"{option}={value!r} ({origin}) is not valid; choose one of: {', '.join(spec.choices)}"
        )
    return value


class MLOps(SingletonConfigurable):
    """jupyter-mlops settings, set with ``%config MLOps.<option> = ...``.

    Unset traits (``None``) fall through to env vars, pyproject.toml and defaults.
    """

    home = Unicode(None, allow_none=True, help=OPTIONS["home"].help).tag(config=True)
    tracking_uri = Unicode(None, allow_none=True, help=OPTIONS["tracking_uri"].help).tag(
        config=True
    )
    experiment = Unicode(None, allow_none=True, help=OPTIONS["experiment"].help).tag(config=True)
    snapshot_store = Unicode(None, allow_none=True, help=OPTIONS["snapshot_store"].help).tag(
        config=True
    )
    gate_mode = Unicode(None, allow_none=True, help=OPTIONS["gate_mode"].help).tag(config=True)
    display = Unicode(None, allow_none=True, help=OPTIONS["display"].help).tag(config=True)

    @validate(*OPTIONS)
    def _check(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is None:
            return value
        try:
            return check_value(proposal["trait"].name, value, "%config MLOps")
        except ConfigError as exc:
            raise TraitError(str(exc)) from None

    def apply_leniently(self, config: Any) -> list[str]:
        """Take the ``MLOps`` section of a shell's config, skipping (and naming) bad values."""
        problems = []
        for name, value in config.get("MLOps", {}).items():
            try:
                setattr(self, name, value)
            except (TraitError, AttributeError) as exc:
                problems.append(str(exc))
        return problems

    def explicit(self) -> dict[str, str]:
        """The options set through ``%config`` (or a traitlets config file)."""
        return {name: getattr(self, name) for name in OPTIONS if getattr(self, name) is not None}


@dataclass(frozen=True)
class Settings:
    """Fully resolved settings; ``sources`` says where each value came from."""

    home: Path
    home_exists: bool
    tracking_uri: str
    experiment: str
    snapshot_store: str
    gate_mode: str
    display: str
    notebook: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict)


def find_upwards(start: Path, name: str, *, want_dir: bool) -> Path | None:
    """The nearest ``name`` in ``start`` or one of its parents."""
    for folder in (start, *start.parents):
        candidate = folder / name
        if candidate.is_dir() if want_dir else candidate.is_file():
            return candidate
    return None


def read_pyproject(cwd: Path) -> tuple[dict[str, str], Path | None]:
    """``[tool.jupyter-mlops]`` of the nearest pyproject.toml, validated."""
    path = find_upwards(cwd, "pyproject.toml", want_dir=False)
    if path is None:
        return {}, None
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh).get("tool", {}).get(PYPROJECT_TABLE, {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; fix the TOML syntax") from None
    origin = f"[tool.{PYPROJECT_TABLE}] in {path}"
    values = {key: check_value(key, value, origin) for key, value in table.items()}
    return values, path


def is_url(location: str) -> bool:
    return "://" in location


def _absolute(location: str, base: Path) -> Path:
    path = Path(location).expanduser()
    return path if path.is_absolute() else (base / path)


def resolve_settings(
    cwd: Path | None = None,
    *,
    flags: Mapping[str, str | None] | None = None,
    configured: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    notebook: Path | None = None,
    create_home: bool = True,
) -> Settings:
    """Resolve every option for a kernel (or a notebook folder, for the server).

    ``create_home=False`` reports where the store would be without creating ``./.mlops/``:
    the server extension must not create folders when someone merely browses.
    """
    cwd = (cwd or Path.cwd()).resolve()
    env = os.environ if env is None else env
    pyproject, pyproject_path = read_pyproject(cwd)
    from_env = {name: env[o.env] for name, o in OPTIONS.items() if env.get(o.env)}
    env_names = {name: o.env for name, o in OPTIONS.items()}
    if "experiment" not in from_env and env.get(MLFLOW_EXPERIMENT_ENV):
        # MLflow's own variable, as mlflow.start_run() would honour it.
        from_env["experiment"] = env[MLFLOW_EXPERIMENT_ENV]
        env_names["experiment"] = MLFLOW_EXPERIMENT_ENV
    layers: list[tuple[str, Mapping[str, Any], Path]] = [
        ("flag", {k: v for k, v in (flags or {}).items() if v is not None}, cwd),
        ("%config", configured or {}, cwd),
        ("env", from_env, cwd),
        ("pyproject", pyproject, pyproject_path.parent if pyproject_path else cwd),
    ]
    chosen: dict[str, str] = {}
    sources: dict[str, str] = {}
    bases: dict[str, Path] = {}
    for origin, values, base in layers:
        for name, value in values.items():
            if name not in chosen:
                chosen[name] = check_value(name, value, f"from {origin}")
                sources[name] = origin if origin != "env" else f"env {env_names[name]}"
                bases[name] = base

    if "home" in chosen:
        home = _absolute(chosen["home"], bases["home"]).resolve()
    else:
        found = find_upwards(cwd, HOME_DIRNAME, want_dir=True)
        home = found.resolve() if found else cwd / HOME_DIRNAME
        sources["home"] = "found" if found else "default"
    if create_home:
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the store folder {home}: {exc.strerror}; "
                "set MLOps.home (or MLOPS_HOME) to a writable folder"
            ) from None

    if "tracking_uri" not in chosen:
        chosen["tracking_uri"] = f"sqlite:///{home / 'mlflow.db'}"
        sources["tracking_uri"] = "default"
    if "snapshot_store" in chosen:
        store = chosen["snapshot_store"]
        if not is_url(store):
            chosen["snapshot_store"] = str(_absolute(store, bases["snapshot_store"]))
    else:
        chosen["snapshot_store"] = str(home / "snapshots")
        sources["snapshot_store"] = "default"
    if "experiment" not in chosen:
        chosen["experiment"] = notebook.stem if notebook else "Default"
        sources["experiment"] = "notebook" if notebook else "default"
    for name, value in DEFAULTS.items():
        if name not in chosen:
            chosen[name] = value
            sources[name] = "default"

    return Settings(
        home=home,
        home_exists=home.is_dir(),
        tracking_uri=chosen["tracking_uri"],
        experiment=chosen["experiment"],
        snapshot_store=chosen["snapshot_store"],
        gate_mode=chosen["gate_mode"],
        display=chosen["display"],
        notebook=notebook,
        sources=sources,
    )
