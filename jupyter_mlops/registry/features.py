"""Feature code registered with the model (``%register MODEL --name N --features FUNC``).

The model version is one MLflow pyfunc, :class:`FeaturePipeline`: ``predict(context, raw)`` is
``predict_from_features(compute_features(raw))``. Whoever loads it (``mlops.load_model``,
``%score``, ``%serve``, plain ``mlflow.pyfunc.load_model``) applies exactly the function the model
was trained with to raw input; ``%skew`` calls ``compute_features`` on the training snapshot.
The function travels by value (cloudpickle, as MLflow saves any python model), its source is
kept beside the model (``features.py``) and its name and SHA-256 are tagged on the version.
Imported only when a model with features is registered or loaded, so MLflow loads with it.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from .. import records
from ..errors import MLOpsUsageError
from .flavors import Flavor, base_requirements, pick_flavor, pins, register_flavor

REQUIREMENTS = {"pytorch": ("torch",), "sklearn": ("scikit-learn",)}


@dataclass(frozen=True)
class FeatureCode:
    """What is recorded of a feature function: its name, source and the source's hash."""

    name: str
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    def tags(self) -> dict[str, str]:
        return {records.TAG_FEATURES: self.name, records.TAG_FEATURES_HASH: self.sha256}


def feature_code(function: Any) -> FeatureCode:
    """The function's name and source; a usage error when it has none to record."""
    if not callable(function) or isinstance(function, type):
        raise MLOpsUsageError(
            f"--features takes a function of a raw DataFrame, got a {type(function).__name__}"
        )
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        raise MLOpsUsageError(
            f"cannot read the source of {name!r} to record it; define the feature function "
            "with def in a cell or a module"
        ) from None
    return FeatureCode(name, source)


class FeaturePipeline(PythonModel):
    """Features then predict, as one pyfunc model."""

    def __init__(self, features: Callable[[Any], Any], model: Any, flavor: str, code: FeatureCode):
        self.features = features
        self.model = model
        self.flavor = flavor  # how ``model`` is called: pytorch, sklearn or pyfunc
        self.code = code

    def compute_features(self, raw: Any) -> Any:
        """The registered feature function on a raw frame; it must give a DataFrame."""
        frame = self.features(raw)
        if not isinstance(frame, pd.DataFrame):
            raise MLOpsUsageError(
                f"the feature function {self.code.name} returned a {type(frame).__name__}, "
                "not a pandas DataFrame"
            )
        return frame

    def predict_from_features(self, features: Any) -> Any:
        """The model on computed features, as its flavor calls it."""
        if self.flavor == "pytorch":
            import torch

            with torch.no_grad():
                tensor = torch.as_tensor(features.to_numpy(dtype="float32"))
                return self.model(tensor).detach().cpu().numpy()
        if self.flavor == "sklearn":
            return self.model.predict(features)
        return self.model(features)

    # A DataFrame hint: MLflow infers no schema from it and leaves raw input unconverted.
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        """What every pyfunc loader calls: features, then the model."""
        return self.predict_from_features(self.compute_features(model_input))


def pipeline(model: Any, features: Any, flavor: str | None = None) -> FeaturePipeline:
    """``model`` (checked as ``%register`` checks it) behind ``features``, as one pyfunc model."""
    inner = pick_flavor(model, flavor)
    if inner.name == "folder":
        raise MLOpsUsageError(
            "--features needs the model object (a torch module, an estimator or a callable), "
            "not a saved model folder"
        )
    return FeaturePipeline(features, model, inner.name, feature_code(features))


def _save(obj: Any, folder: Path, mlflow_model: Any, example: Any) -> None:
    import mlflow.pyfunc

    mlflow.pyfunc.save_model(
        str(folder),
        python_model=obj,
        mlflow_model=mlflow_model,
        input_example=example,
        pip_requirements=pins(*REQUIREMENTS.get(obj.flavor, ())) + base_requirements(),
    )
    (folder / records.FEATURES_ARTIFACT).write_text(obj.code.source, encoding="utf-8")


register_flavor(Flavor("features", lambda obj: isinstance(obj, FeaturePipeline), _save))
