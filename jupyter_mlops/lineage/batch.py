"""Papermill parameters recorded as run params.

Papermill injects a cell (tagged ``injected-parameters``) whose source starts with
``# Parameters`` and assigns each ``-p NAME VALUE``. The kernel never sees cell tags, so the
IPython face shows us every cell's source: after the injected cell ran, its names and values are
kept here, and every tracked run that starts later in the same kernel gets them as params (a
name the run already recorded, e.g. through ``--params``, is left as it is). The run also gets the
tag ``mlops.batch_parameters`` listing the names, so ``mlops.reproduce`` can say which params came
from papermill.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Mapping
from typing import Any

from .. import records as names
from ..context import current_notebook, current_settings
from . import records

PARAMETERS_HEADER = "# Parameters"

_parameters: dict[str, str] = {}
_pending: list[str] = []
_cell_started_ms: list[int] = [0]


def parameter_names(source: str) -> list[str]:
    """The names a papermill parameters cell assigns (empty for any other cell)."""
    lines = source.lstrip().splitlines()
    if not lines or lines[0].strip() != PARAMETERS_HEADER:
        return []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        names.extend(t.id for t in targets if isinstance(t, ast.Name))
    return names


def parameters() -> dict[str, str]:
    """The papermill parameters of this kernel, rendered as run params."""
    return dict(_parameters)


def capture(names: list[str], namespace: Mapping[str, Any]) -> None:
    from ..tracking.context import render_param

    for name in names:
        if name in namespace:
            try:
                _parameters[name] = render_param(namespace[name])
            except Exception:  # a value MLflow cannot hold as a param is skipped
                continue


def before_cell(source: str) -> None:
    _pending[:] = parameter_names(source)
    _cell_started_ms[0] = int(time.time() * 1000)


def after_cell(namespace: Mapping[str, Any]) -> None:
    """Keep the values a parameters cell assigned; give them to runs the cell just started."""
    if _pending:
        capture(_pending, namespace)
        _pending.clear()
        return
    if _parameters:
        record_on_runs_since(_cell_started_ms[0])


def record_on_runs_since(start_ms: int) -> list[str]:
    """Add the parameters to every tracked run of this notebook started at or after ``start_ms``
    (another kernel writing to the same store meanwhile keeps its runs as they are)."""
    from ..tracking.client import mlflow_client

    notebook = current_notebook().path

    client = mlflow_client(current_settings().tracking_uri)
    experiments = records.experiment_ids(client)
    if not experiments:
        return []
    runs = client.search_runs(
        experiments, filter_string=f"attributes.start_time >= {start_ms}", max_results=1000
    )
    done = []
    for run in runs:
        ours = notebook is None or run.data.tags.get(names.TAG_NOTEBOOK) == str(notebook)
        if ours and records.is_tracked(run) and names.TAG_BATCH_PARAMETERS not in run.data.tags:
            record_on_run(client, run)
            done.append(run.info.run_id)
    return done


def record_on_run(client: Any, run: Any) -> None:
    from mlflow.entities import Param, RunTag

    new = {k: v for k, v in _parameters.items() if k not in run.data.params}
    client.log_batch(
        run.info.run_id,
        params=[Param(k, v) for k, v in new.items()],
        tags=[RunTag(names.TAG_BATCH_PARAMETERS, ",".join(sorted(_parameters)))],
    )


def reset() -> None:
    """Forget the parameters (a new notebook in the same process, e.g. in tests)."""
    _parameters.clear()
    _pending.clear()
