"""``%compare``: params and metrics of runs side by side, and their metric curves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..config import Settings
from ..errors import MLOpsNotFound, MLOpsUsageError
from .client import mlflow_client
from .colours import PALETTE

MAX_CURVE_POINTS = 2000
PREFIX_MIN = 6


@dataclass(frozen=True)
class Comparison:
    run_ids: list[str]
    labels: list[str]  # one column per run: its name (with an id prefix where names repeat)
    params: pd.DataFrame  # index: param name, one column per run
    metrics: pd.DataFrame  # index: metric name, last value per run
    param_differs: list[bool]
    metric_differs: list[bool]
    curves: dict[
        str, dict[str, tuple[list[int], list[float]]]
    ]  # metric -> label -> (steps, values)

    def figure(self) -> Any:
        """The curves as an interactive plotly Figure, one panel per metric.

        Shown by plotly's own renderer (in JupyterLab its bundled extension: offline, loaded
        once), while the comparison's own HTML stays static SVG of a few KB.
        """
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        names = list(self.curves) or ["(no metrics)"]
        figure = make_subplots(rows=1, cols=len(names), subplot_titles=names)
        for col, metric in enumerate(names, start=1):
            for label, (steps, values) in self.curves.get(metric, {}).items():
                once = len(steps) == 1  # a value logged once is a labelled dot
                figure.add_trace(
                    go.Scatter(
                        x=steps,
                        y=values,
                        mode="markers+text" if once else "lines",
                        text=[f"{values[0]:.4g}"] if once else None,
                        textposition="middle right",
                        name=label,
                        legendgroup=label,
                        showlegend=col == 1,
                        marker={"color": PALETTE[self.labels.index(label) % len(PALETTE)]},
                    ),
                    row=1,
                    col=col,
                )
        figure.update_layout(height=320, width=max(420, 360 * len(names)), margin={"t": 30})
        return figure

    def __repr__(self) -> str:
        lines = [f"compare {len(self.run_ids)} runs: {', '.join(self.labels)}  (* differs)"]
        for title, frame, differs in (
            ("params", self.params, self.param_differs),
            ("metrics", self.metrics, self.metric_differs),
        ):
            if not len(frame):
                continue
            lines.append(f"{title}:")
            text = frame.to_string(na_rep="-", float_format=lambda v: f"{v:.6g}")
            head, *rows = text.splitlines()
            lines.append(f"    {head}")
            for row, diff in zip(rows[-len(frame) :], differs, strict=True):
                lines.append(f"  {'*' if diff else ' '} {row}")
        return "\n".join(lines)


def _differs(frame: pd.DataFrame) -> list[bool]:
    out = []
    for _, row in frame.iterrows():
        values = {("nan" if isinstance(v, float) and math.isnan(v) else v) for v in row}
        out.append(len(values) > 1)
    return out


def resolve_runs(client: Any, refs: Sequence[str]) -> list[Any]:
    """Runs by id or unique id prefix, in the order given."""
    from mlflow.exceptions import MlflowException

    candidates: list[Any] | None = None
    runs = []
    for ref in refs:
        ref = ref.strip()
        try:
            runs.append(client.get_run(ref))
            continue
        except MlflowException:
            pass
        if len(ref) < PREFIX_MIN:
            raise MLOpsNotFound(f"no run {ref!r}; give a run id or at least {PREFIX_MIN} chars")
        if candidates is None:
            ids = [e.experiment_id for e in client.search_experiments()]
            candidates = list(client.search_runs(ids, max_results=5000)) if ids else []
        matches = [r for r in candidates if r.info.run_id.startswith(ref)]
        if len(matches) != 1:
            if not matches:
                raise MLOpsNotFound(f"no run with id {ref!r}; give a run id shown by %runs")
            raise MLOpsUsageError(f"{len(matches)} runs with id {ref!r}; give a longer id prefix")
        runs.append(matches[0])
    return runs


def _thin(steps: list[int], values: list[float]) -> tuple[list[int], list[float]]:
    stride = max(1, math.ceil(len(steps) / MAX_CURVE_POINTS))
    if stride == 1:
        return steps, values
    keep = list(range(0, len(steps), stride))
    if keep[-1] != len(steps) - 1:
        keep.append(len(steps) - 1)
    return [steps[i] for i in keep], [values[i] for i in keep]


def compare(
    settings: Settings, run_ids: Sequence[str], metrics: Sequence[str] | None = None
) -> Comparison:
    """``%compare`` and the panel's Compare: runs by id or unique id prefix, in the order given."""
    if len(run_ids) < 2:
        raise MLOpsUsageError("give at least two run ids to compare")
    client = mlflow_client(settings.tracking_uri)
    runs = resolve_runs(client, run_ids)
    names = [r.info.run_name or r.info.run_id[:8] for r in runs]
    labels = [
        f"{n} ({r.info.run_id[:6]})" if names.count(n) > 1 else n
        for n, r in zip(names, runs, strict=True)
    ]
    params = pd.DataFrame(
        {label: r.data.params for label, r in zip(labels, runs, strict=True)}, dtype=object
    ).sort_index()
    last = pd.DataFrame(
        {label: r.data.metrics for label, r in zip(labels, runs, strict=True)}, dtype=float
    ).sort_index()
    wanted = list(metrics) if metrics else list(last.index)
    unknown = [m for m in wanted if m not in last.index]
    if unknown:
        raise MLOpsUsageError(
            f"--metric {unknown[0]!r} was not logged by these runs; "
            f"logged: {', '.join(last.index) or 'none'}"
        )
    if metrics:
        last = last.loc[wanted]
    curves: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for metric in wanted:
        per_run = {}
        for label, run in zip(labels, runs, strict=True):
            if metric in run.data.metrics:
                history = sorted(
                    client.get_metric_history(run.info.run_id, metric),
                    key=lambda m: (m.step, m.timestamp),
                )
                per_run[label] = _thin([m.step for m in history], [m.value for m in history])
        curves[metric] = per_run
    return Comparison(
        run_ids=[r.info.run_id for r in runs],
        labels=labels,
        params=params,
        metrics=last,
        param_differs=_differs(params),
        metric_differs=_differs(last),
        curves=curves,
    )
