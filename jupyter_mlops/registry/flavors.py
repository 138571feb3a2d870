"""How each kind of model is written as an MLflow model folder; flavors are registered by name.

Every flavor passes explicit ``pip_requirements`` (MLflow's inference costs seconds per model)
pinned to what this process runs. Torch modules with an input example are saved with
``torch.export`` ("pt2": self-contained, reloads as a GraphModule; give an example of 2+ rows
so the batch dimension stays dynamic); without one, with cloudpickle (reloads the original
class). scikit-learn estimators are cloudpickled (MLflow's default, skops, is not installed
here). Any other callable becomes a pyfunc model calling it on the input.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import MLOpsUsageError

MLMODEL = "MLmodel"


def pins(*distributions: str) -> list[str]:
    """``name==version`` for each installed distribution, local labels (``+cpu``) dropped."""
    found = []
    for name in distributions:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(f"{name}=={version.split('+')[0]}")
    return found


def base_requirements() -> list[str]:
    return pins("mlflow-skinny", "cloudpickle", "numpy", "pandas")


def as_example(example: Any) -> Any:
    """MLflow takes numpy/pandas examples; a torch tensor becomes an ndarray."""
    if example is not None and hasattr(example, "detach") and hasattr(example, "numpy"):
        return example.detach().cpu().numpy()
    return example


@dataclass(frozen=True)
class Flavor:
    name: str
    accepts: Callable[[Any], bool]
    save: Callable[[Any, Path, Any, Any], None]  # (model, folder, mlflow Model, example)


FLAVORS: dict[str, Flavor] = {}


def register_flavor(flavor: Flavor) -> None:
    FLAVORS[flavor.name] = flavor


def model_folder(obj: Any) -> Path | None:
    if isinstance(obj, str | Path):
        path = Path(obj).expanduser()
        if path.is_dir() and (path / MLMODEL).is_file():
            return path
    return None


def _save_folder(obj: Any, folder: Path, mlflow_model: Any, example: Any) -> None:
    source = model_folder(obj)
    assert source is not None
    shutil.copytree(source, folder)


def _is_torch(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _save_torch(obj: Any, folder: Path, mlflow_model: Any, example: Any) -> None:
    import mlflow.pytorch

    mlflow.pytorch.save_model(
        obj,
        str(folder),
        mlflow_model=mlflow_model,
        input_example=example,
        pip_requirements=pins("torch") + base_requirements(),
        serialization_format="pickle" if example is None else "pt2",
    )


def _is_sklearn(obj: Any) -> bool:
    base = sys.modules.get("sklearn.base")
    return base is not None and isinstance(obj, base.BaseEstimator)


def _save_sklearn(obj: Any, folder: Path, mlflow_model: Any, example: Any) -> None:
    import mlflow.sklearn

    mlflow.sklearn.save_model(
        obj,
        str(folder),
        mlflow_model=mlflow_model,
        input_example=example,
        pip_requirements=pins("scikit-learn") + base_requirements(),
        serialization_format="cloudpickle",
    )


def _save_callable(obj: Any, folder: Path, mlflow_model: Any, example: Any) -> None:
    import mlflow.pyfunc

    mlflow.pyfunc.save_model(
        str(folder),
        python_model=obj,
        mlflow_model=mlflow_model,
        input_example=example,
        pip_requirements=base_requirements(),
    )


register_flavor(Flavor("folder", lambda obj: model_folder(obj) is not None, _save_folder))
register_flavor(Flavor("pytorch", _is_torch, _save_torch))
register_flavor(Flavor("sklearn", _is_sklearn, _save_sklearn))
register_flavor(Flavor("pyfunc", callable, _save_callable))


def pick_flavor(obj: Any, flavor: str | None = None) -> Flavor:
    """The named flavor, or the first registered one that accepts the object."""
    if flavor is not None:
        if flavor not in FLAVORS:
            raise MLOpsUsageError(f"unknown flavor {flavor!r}; choose one of: {', '.join(FLAVORS)}")
        chosen = FLAVORS[flavor]
        if not chosen.accepts(obj):
            raise MLOpsUsageError(
                f"a {type(obj).__name__} cannot be saved with the {flavor} flavor"
            )
        return chosen
    for candidate in FLAVORS.values():
        if candidate.accepts(obj):
            return candidate
    if isinstance(obj, str | Path):
        raise MLOpsUsageError(
            f"{obj} is not an MLflow model folder (no {MLMODEL} file); pass a saved model folder, "
            "a torch module, a scikit-learn estimator or a callable"
        )
    raise MLOpsUsageError(
        f"cannot register a {type(obj).__name__}: pass a torch nn.Module, a scikit-learn "
        "estimator, a callable or a saved MLflow model folder"
    )


def folder_flavor(folder: Path) -> str:
    """The main flavor an existing MLmodel file declares (for the version's tag)."""
    import yaml

    declared = yaml.safe_load((folder / MLMODEL).read_text()).get("flavors", {})
    native = [name for name in declared if name != "python_function"]
    return native[0] if native else "pyfunc"
