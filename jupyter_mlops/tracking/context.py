"""What a tracked run records without being asked: params, source, notebook, git, environment.

Nothing here initialises CUDA: GPUs are listed by NVML or ``nvidia-smi``
(``environment.gpu_inventory``).
"""

from __future__ import annotations

import ast
import getpass
import json
import platform
import subprocess
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from .. import environment, records
from ..errors import MLOpsUsageError

KEY_PACKAGES = (
    "jupyter_mlops",
    "mlflow-skinny",
    "torch",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "pyarrow",
)
PARAM_MAX = 6000  # MLflow's limit on a param value
TAG_MAX = 8000  # and on a tag value
SIMPLE = (bool, int, float, str, type(None))


def render_param(value: Any) -> str:
    """A param value as text a reader recognises: numbers, strings, small lists and dicts exact."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():  # numpy / torch scalars
        value = item()
    if isinstance(value, str):
        text = value
    elif isinstance(value, SIMPLE):
        text = repr(value)
    elif isinstance(value, list | tuple | dict | set | frozenset):
        try:
            text = json.dumps(sorted(value) if isinstance(value, set | frozenset) else value)
        except (TypeError, ValueError):
            text = repr(value)
    else:
        text = repr(value)
        if len(text) > 250 or "\n" in text:
            shape = getattr(value, "shape", None)
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            text = f"<{kind} shape={tuple(shape)}>" if shape is not None else f"<{kind}>"
    if len(text) > PARAM_MAX:
        raise MLOpsUsageError(
            f"the value is {len(text)} characters long, over MLflow's {PARAM_MAX}-character "
            "limit for a param; save it with mlops.log_artifact instead"
        )
    return text


def _lookup(path: str, namespace: Mapping[str, Any]) -> Any:
    head, *rest = path.split(".")
    value = namespace[head]
    for part in rest:
        value = value[part] if isinstance(value, Mapping) else getattr(value, part)
    return value


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def assigned_names(code: str) -> set[str]:
    """Names a cell binds or assigns into (``lr = ...``, ``cfg.lr = ...``, ``d["k"] = ...``,
    loop targets, imports, defs). ``code`` is Python: IPython's transformed cell, not its source.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute | ast.Subscript) and isinstance(
            node.ctx, ast.Store | ast.Del
        ):
            root = _root_name(node)
            if root:
                names.add(root)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


def check_param_names(
    names: Iterable[str], namespace: Mapping[str, Any], code: str = ""
) -> tuple[list[str], list[str]]:
    """Split ``--params`` names into (read now, read when the cell ends); reject the rest.

    A name the cell assigns is read at the end even when it exists already: the run records
    the value the cell used (``lr = 0.2`` in the cell, not the ``0.5`` set earlier).
    """
    now, later = [], []
    bound = assigned_names(code)
    for name in names:
        parts = name.split(".")
        if not all(p.isidentifier() for p in parts):
            raise MLOpsUsageError(
                f"--params {name!r} is not a variable name; pass names such as lr or cfg.lr"
            )
        if parts[0] in bound:
            later.append(name)
        elif parts[0] in namespace:
            now.append(name)
        else:
            raise MLOpsUsageError(
                f"--params {name!r}: no variable {parts[0]!r} in the notebook or assigned in "
                "this cell; define it first or fix the name"
            )
    return now, later


def read_params(
    names: Iterable[str], namespace: Mapping[str, Any], *, skip_missing: bool = False
) -> dict[str, str]:
    params = {}
    for name in names:
        try:
            value = _lookup(name, namespace)
        except (KeyError, AttributeError, TypeError):
            if skip_missing:
                continue
            raise MLOpsUsageError(
                f"--params {name!r} cannot be read from the notebook; fix the name"
            ) from None
        try:
            params[name] = render_param(value)
        except MLOpsUsageError as exc:
            raise MLOpsUsageError(f"--params {name!r}: {exc}") from None
    return params


def git_state(folder: Path) -> dict[str, str]:
    """Commit and dirty flag of the repository holding ``folder`` (empty outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=folder, capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    tags = {"mlflow.source.git.commit": commit, records.TAG_GIT_DIRTY: str(bool(dirty)).lower()}
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":
        tags["mlflow.source.git.branch"] = branch
    return tags


def user_tags() -> dict[str, str]:
    """``mlflow.user``, as ``mlflow.start_run`` records it (MLflow's UI filters on it)."""
    try:
        return {"mlflow.user": getpass.getuser()}
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return {}


@cache
def environment_tags() -> dict[str, str]:
    """Python, key packages and GPUs; asked once per process (they do not change under us)."""
    tags = {records.TAG_PYTHON: platform.python_version()}
    for name in KEY_PACKAGES:
        version = environment.package_version(name)
        if version:
            tags[records.package_tag(name)] = version
    gpus = environment.gpu_inventory()
    tags[records.TAG_GPUS] = json.dumps(
        [
            {"index": g.index, "name": g.name, "memory_mib": g.memory_mib, "uuid": g.uuid}
            for g in gpus
        ]
    )
    return tags


def source_tags(notebook: Path | None, notebook_source: str, cell_id: str | None) -> dict[str, str]:
    """Where the code came from, in MLflow's own tags (so its UI shows the notebook) and ours."""
    tags = {records.TAG_NOTEBOOK_SOURCE: notebook_source}
    if notebook is not None:
        tags.update(
            {
                records.TAG_NOTEBOOK: str(notebook),
                "mlflow.source.name": str(notebook),
                "mlflow.source.type": "NOTEBOOK",
            }
        )
    if cell_id:
        tags[records.TAG_CELL_ID] = cell_id
    return tags


def cell_id_in_notebook(notebook: Path, source: str) -> str | None:
    """The id of the one cell of the saved notebook whose source is ``source``.

    Batch runners (nbclient, so nbconvert and papermill) do not send the cell id to the kernel.
    """
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return None
    wanted = source.strip()
    ids = [
        c.get("id")
        for c in cells
        if c.get("cell_type") == "code"
        and "".join(c.get("source", [])).strip() == wanted
        and isinstance(c.get("id"), str)
    ]
    return ids[0] if len(ids) == 1 else None


def clip(text: str, limit: int = TAG_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
