"""``%register``: log a model to a run as an MLflow LoggedModel and register a version of it.

The version is tagged with its run, the run's input snapshots and the notebook, so lineage can
walk snapshot -> run -> model version. Versions are ints everywhere in jupyter-mlops (SQLite
gives ints, HTTP stores strings). Reference forms: ``NAME`` (latest version), ``NAME/VERSION``,
``NAME@ALIAS``.
"""

from __future__ import annotations

import getpass
import logging
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import records
from ..config import Settings
from ..context import current_notebook
from ..errors import MLOpsNotFound, MLOpsUsageError
from ..tracking.active import active_run
from ..tracking.client import mlflow_client
from .flavors import folder_flavor, pick_flavor
from .results import ModelVersion

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

MODEL_NAME = re.compile(r"[A-Za-z0-9_.-][A-Za-z0-9_. -]*")


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's save_model chatter (pickle caution, type-hint advice, signature inference)."""
    loggers = [logging.getLogger(n) for n in ("mlflow.pytorch", "mlflow.pyfunc", "mlflow.models")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def check_name(name: str) -> str:
    if not name or not MODEL_NAME.fullmatch(name):
        raise MLOpsUsageError(
            f"model name {name!r} is not valid; use letters, digits, '_', '-', '.' and spaces "
            "('/' and '@' separate versions and aliases)"
        )
    return name


def latest_run(settings: Settings, client: MlflowClient) -> Any:
    """The run a model belongs to by default: the open one, else the notebook's newest run.

    Runs that ``%%track`` replaced (re-executed cells) and unfinished runs are skipped; a newest
    run that failed is refused rather than silently passed over.
    """
    open_run = active_run()
    if open_run is not None and open_run.tracking_uri == settings.tracking_uri:
        return client.get_run(open_run.run_id)
    experiment = client.get_experiment_by_name(settings.experiment)
    runs: list[Any] = []
    if experiment is not None:
        runs = client.search_runs(
            [experiment.experiment_id],
            # Never a run still writing (or whose kernel died before ending it).
            filter_string=(
                f"tags.`{records.TAG_SUPERSEDED_BY}` IS NULL and attributes.status != 'RUNNING'"
            ),
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    if not runs:
        raise MLOpsUsageError(
            f"experiment {settings.experiment!r} has no run to attach the model to; "
            "run a %%track cell first or pass --run RUN_ID"
        )
    newest = runs[0]
    if newest.info.status in ("FAILED", "KILLED"):
        raise MLOpsUsageError(
            f"the newest run {newest.info.run_name!r} of experiment {settings.experiment!r} "
            f"ended {newest.info.status}; fix it, or pass --run RUN_ID to choose a run"
        )
    return newest


def get_run(client: MlflowClient, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise MLOpsUsageError(f"no run {run_id!r} in this store; see %runs for run ids") from None


def run_snapshots(run: Any) -> tuple[list[str], list[str]]:
    """The snapshot refs (and ids) a run read or wrote, from its MLflow dataset inputs."""
    refs, ids = [], []
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        tags = {t.key: t.value for t in dataset_input.tags}
        ref = tags.get(records.INPUT_TAG_REF, dataset_input.dataset.name)
        if ref not in refs:
            refs.append(ref)
            ids.append(tags.get(records.INPUT_TAG_ID, dataset_input.dataset.digest))
    return refs, ids


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(name)
        except MlflowException as again:  # another kernel created it meanwhile
            if again.error_code != "RESOURCE_ALREADY_EXISTS":
                raise


def register(
    settings: Settings,
    model: Any,
    name: str,
    *,
    run_id: str | None = None,
    input_example: Any = None,
    flavor: str | None = None,
    features: Any = None,
) -> ModelVersion:
    """Log ``model`` to the run (default: :func:`latest_run`) and register it as ``name``;
    with ``features`` (a function of a raw frame) the version is one pyfunc that computes the
    features, then predicts (:mod:`.features`)."""
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model

    from .flavors import as_example

    check_name(name)
    code_tags: dict[str, str] = {}
    if features is not None:
        from .features import pipeline

        model, flavor = pipeline(model, features, flavor), "features"
        code_tags = model.code.tags()
    chosen = pick_flavor(model, flavor)
    client = mlflow_client(settings.tracking_uri)
    run = get_run(client, run_id) if run_id else latest_run(settings, client)
    run_id = run.info.run_id
    refs, ids = run_snapshots(run)
    notebook = run.data.tags.get(records.TAG_NOTEBOOK) or (
        str(current_notebook().path) if current_notebook().path else None
    )

    logged = client.create_logged_model(
        run.info.experiment_id,
        name=name,
        source_run_id=run_id,
        tags={records.TAG_FLAVOR: chosen.name},
    )
    try:
        with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
            folder = Path(tmp) / "model"
            description = Model(artifact_path=name, run_id=run_id, model_id=logged.model_id)
            with quiet_mlflow():
                chosen.save(model, folder, description, as_example(input_example))
            client.log_model_artifacts(logged.model_id, str(folder))
            native = chosen.name not in ("folder", "features")  # else: what the folder declares
            flavor_name = chosen.name if native else folder_flavor(folder)
        client.finalize_logged_model(logged.model_id, "READY")
    except BaseException:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])

    ensure_registered_model(client, name)
    tags = {
        records.TAG_RUN_ID: run_id,
        records.TAG_SNAPSHOTS: ",".join(refs),
        records.TAG_SNAPSHOT_IDS: ",".join(ids),
        records.TAG_FLAVOR: flavor_name,
        records.TAG_REGISTERED_BY: user(),
        **code_tags,
    }
    if notebook:
        tags[records.TAG_NOTEBOOK] = notebook
    version = client.create_model_version(
        name, source=logged.artifact_location, run_id=run_id, tags=tags, model_id=logged.model_id
    )
    return ModelVersion(
        name=name,
        version=int(version.version),
        flavor=flavor_name,
        run_id=run_id,
        run_name=run.info.run_name or run_id,
        model_id=logged.model_id,
        snapshots=tuple(refs),
        notebook=notebook,
        features=code_tags.get(records.TAG_FEATURES),
    )


def split_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``NAME``, ``NAME/VERSION`` or ``NAME@ALIAS`` -> (name, version, alias)."""
    text = ref.strip()
    if text.startswith("models:/"):
        text = text[len("models:/") :]
    if "@" in text:
        name, _, alias = text.partition("@")
        return check_name(name), None, alias
    name, slash, version = text.partition("/")
    if slash:
        if not version.isdigit():
            raise MLOpsUsageError(f"{ref!r}: write NAME, NAME/VERSION (a number) or NAME@ALIAS")
        return check_name(name), int(version), None
    return check_name(name), None, None


def resolve_version(client: MlflowClient, ref: str) -> Any:
    """The MLflow ModelVersion a reference names; unknown names and versions are usage errors."""
    from mlflow.exceptions import MlflowException

    name, version, alias = split_ref(ref)
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        known = sorted(m.name for m in client.search_registered_models(max_results=20))
        raise MLOpsNotFound(
            f"no registered model {name!r}; known models: {', '.join(known) or 'none'} "
            "(register one with %register)"
        ) from None
    if alias is not None:
        if alias not in registered.aliases:
            raise MLOpsNotFound(
                f"model {name!r} has no alias {alias!r} "
                f"(aliases: {', '.join(sorted(registered.aliases)) or 'none'})"
            )
        return client.get_model_version(name, str(registered.aliases[alias]))
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    if not versions:
        raise MLOpsNotFound(f"model {name!r} has no versions; register one with %register")
    if version is None:
        version = versions[-1]
    if version not in versions:
        raise MLOpsNotFound(
            f"model {name!r} has no version {version} (versions: {', '.join(map(str, versions))})"
        )
    return client.get_model_version(name, str(version))


def alias_holder(client: MlflowClient, name: str, alias: str) -> int | None:
    """The version an alias points to now (read fresh from the registry), or None."""
    holder = client.get_registered_model(name).aliases.get(alias)
    return None if holder is None else int(holder)


def load_model(settings: Settings, ref: str, flavor: str = "pyfunc") -> Any:
    """Load ``NAME``, ``NAME/VERSION`` or ``NAME@ALIAS`` with an MLflow flavor's loader."""
    import importlib

    client = mlflow_client(settings.tracking_uri)
    version = resolve_version(client, ref)
    try:
        loader = importlib.import_module(f"mlflow.{flavor}")
    except ImportError:
        raise MLOpsUsageError(
            f"unknown flavor {flavor!r}; try pyfunc, pytorch or sklearn"
        ) from None
    location = client.get_model_version_download_uri(version.name, version.version)
    return loader.load_model(location)
