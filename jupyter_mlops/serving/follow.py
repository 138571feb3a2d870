"""Following an alias: which version it names now, read cheaply, and the loaded model for it.

The endpoint asks about once a second, so a SQLite registry is read directly (read-only, one
indexed row, no SQLAlchemy session); any other registry goes through MLflow's client.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MLOpsNotFound
from ..tracking.client import mlflow_client, registry_uri_for

FEATURES_METHOD = "compute_features"  # a python model with both computes features separately
FROM_FEATURES_METHOD = "predict_from_features"
# Flavors whose predictions are row by row (a row's answer never depends on the others), so
# the endpoint may score concurrent requests as one frame (micro-batching).
ROW_WISE_LOADERS = frozenset(
    {"mlflow.sklearn", "mlflow.xgboost", "mlflow.lightgbm", "mlflow.catboost"}
)


def alias_version(tracking_uri: str, model: str, alias: str) -> str | None:
    """The version ``model@alias`` names now (a string, as MLflow's REST API gives it)."""
    registry = registry_uri_for(tracking_uri)
    if registry.startswith("sqlite:///"):
        path = Path(registry.removeprefix("sqlite:///"))
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)) as db:
                row = db.execute(
                    "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                    (model, alias),
                ).fetchone()
        except sqlite3.Error:  # locked by a writer right now: ask MLflow, which retries
            pass
        else:
            return None if row is None else str(row[0])
    registered = mlflow_client(tracking_uri).get_registered_model(model)
    holder = registered.aliases.get(alias)
    return None if holder is None else str(holder)


@dataclass(frozen=True)
class Served:
    """One loaded version; requests pin the instance they started with, so a swap never
    changes the model under a request in flight."""

    version: str
    model: Any  # mlflow.pyfunc.PyFuncModel
    input_schema: Any
    python_model: Any = None  # set when the model computes its features separately
    row_wise: bool = False  # requests may be stacked into one predict call

    def predict(self, data: Any, params: Any = None) -> tuple[Any, Any]:
        """(predictions, features or None)."""
        if self.python_model is not None:
            features = self.python_model.compute_features(data)
            return self.python_model.predict_from_features(features), features
        if params is None:
            return self.model.predict(data), None
        return self.model.predict(data, params=params), None


def load_served(tracking_uri: str, model: str, version: str) -> Served:
    """Load ``model`` version ``version`` as a pyfunc (and find its feature methods)."""
    import mlflow.pyfunc

    client = mlflow_client(tracking_uri)
    try:
        location = client.get_model_version_download_uri(model, version)
    except Exception as exc:
        raise MLOpsNotFound(f"model {model!r} version {version} cannot be found: {exc}") from None
    loaded = mlflow.pyfunc.load_model(location)
    python_model = None
    try:
        unwrapped = loaded.unwrap_python_model()
    except Exception:  # not a PythonModel (sklearn, pytorch, ...): it just predicts
        unwrapped = None
    if all(callable(getattr(unwrapped, m, None)) for m in (FEATURES_METHOD, FROM_FEATURES_METHOD)):
        python_model = unwrapped
    schema = loaded.metadata.get_input_schema()
    return Served(
        version=str(version),
        model=loaded,
        input_schema=schema,
        python_model=python_model,
        row_wise=python_model is None and _row_wise(loaded.metadata, schema),
    )


def _row_wise(metadata: Any, schema: Any) -> bool:
    """A named-column signature (MLflow casts requests to it) on a row-by-row flavor."""
    loader = metadata.flavors.get("python_function", {}).get("loader_module")
    if loader not in ROW_WISE_LOADERS or schema is None or schema.is_tensor_spec():
        return False
    hinted = getattr(metadata, "_is_signature_from_type_hint", lambda: False)()
    return not hinted and schema.has_input_names()
