"""The registry as the faces read it: model list, model detail and gate history, from MLflow.

Every function takes explicit :class:`Settings` (as :mod:`..snapshots.service` does) and never
creates a store: a SQLite store not created yet reads as empty. The panel's server and
``%lineage`` read gate history through :func:`gate_history` /
:func:`.history.version_decisions`, so both show what MLflow holds; ``<home>/reports/`` is an
export for CI and is never read back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import MLOpsNotFound, MLOpsUsageError
from ..tracking.query import existing_client
from .history import version_decisions
from .models import run_snapshots

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

MAX_MODEL_NAME_CHARS = 256
MAX_MODELS = 1000


@dataclass(frozen=True)
class ModelRow:
    """One registered model in the list; ``error`` says why its versions could not be read."""

    name: str
    latest_version: int | None
    versions: int
    aliases: dict[str, int]
    error: str | None = None


@dataclass(frozen=True)
class VersionRecord:
    """One model version with its run's metrics and inputs and every gate decision on it."""

    version: int
    run_id: str | None
    run_name: str | None
    created: int | None  # ms since the epoch
    aliases: list[str]
    snapshots: list[str]
    metrics: dict[str, float]
    gates: list[dict[str, Any]] = field(default_factory=list)  # newest first


@dataclass(frozen=True)
class ModelRecord:
    name: str
    aliases: dict[str, int]
    versions: list[VersionRecord]  # newest first


def check_model_name(name: str) -> str:
    """Any name MLflow could hold (plain MLflow allows quotes); '/' and '@' separate refs."""
    if (
        not name.strip()
        or len(name) > MAX_MODEL_NAME_CHARS
        or any(c in name for c in "/@")
        or not name.isprintable()
    ):
        raise MLOpsUsageError(
            f"model name {name[:80]!r} is not valid: give a registered model's name "
            "('/' and '@' separate versions and aliases)"
        )
    return name


def get_registered(client: MlflowClient | None, name: str) -> Any:
    """The registered model ``name``, or :class:`MLOpsNotFound` saying the store lacks it."""
    from mlflow.exceptions import MlflowException

    check_model_name(name)
    if client is None:
        raise MLOpsNotFound(f"no registered model {name!r}: this store has no models yet")
    try:
        return client.get_registered_model(name)
    except MlflowException:
        raise MLOpsNotFound(f"no registered model {name!r} in this store") from None


def model_versions(client: MlflowClient, name: str) -> list[Any]:
    """Every version of model ``name``, whatever quotes the name holds (MLflow has no escape)."""
    if "'" not in name or '"' not in name:
        quote = '"' if "'" in name else "'"
        return list(client.search_model_versions(f"name = {quote}{name}{quote}"))
    return [v for v in client.search_model_versions(max_results=10_000) if v.name == name]


def models(settings: Settings) -> list[ModelRow]:
    """Every registered model, by name; one that cannot be read is a row saying why."""
    from mlflow.exceptions import MlflowException

    client = existing_client(settings)
    if client is None:
        return []
    rows = []
    for model in client.search_registered_models(max_results=MAX_MODELS):
        aliases = {a: int(v) for a, v in sorted(model.aliases.items()) if str(v).isdigit()}
        try:
            numbers = [int(v.version) for v in model_versions(client, model.name)]
        except (MlflowException, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            error = f"its versions cannot be read: {first}; check it with the MLflow UI"
            rows.append(ModelRow(model.name, None, 0, aliases, error))
            continue
        rows.append(ModelRow(model.name, max(numbers) if numbers else None, len(numbers), aliases))
    return sorted(rows, key=lambda m: m.name.lower())


def _run_of(client: MlflowClient, version: Any) -> Any | None:
    from mlflow.exceptions import MlflowException

    if not version.run_id:
        return None
    try:
        return client.get_run(version.run_id)
    except MlflowException:  # a deleted run leaves the version readable
        return None


def model(settings: Settings, name: str) -> ModelRecord:
    """One registered model: its aliases and versions, newest first, each with its gate history."""
    client = existing_client(settings)
    registered = get_registered(client, name)
    assert client is not None
    aliases = {a: int(v) for a, v in sorted(registered.aliases.items())}
    versions = []
    for mv in sorted(model_versions(client, registered.name), key=lambda v: -int(v.version)):
        number = int(mv.version)
        run = _run_of(client, mv)
        decisions = [d for _, d in version_decisions(client, mv, run)]
        versions.append(
            VersionRecord(
                version=number,
                run_id=mv.run_id or None,
                run_name=run.info.run_name if run is not None else None,
                created=mv.creation_timestamp,
                aliases=sorted(a for a, v in aliases.items() if v == number),
                snapshots=run_snapshots(run)[0] if run is not None else [],
                metrics=dict(sorted(run.data.metrics.items())) if run is not None else {},
                gates=decisions[::-1],
            )
        )
    return ModelRecord(registered.name, aliases, versions)


def gate_history(settings: Settings, name: str) -> dict[int, list[dict[str, Any]]]:
    """Every recorded decision on ``name``'s versions, per version, newest first."""
    return {v.version: v.gates for v in model(settings, name).versions if v.gates}
