"""mlops.log: buffered, bounded, and exact (every value logged is in the store, in order)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import jupyter_mlops as mlops
from jupyter_mlops.tracking.context import render_param
from jupyter_mlops.tracking.logger import MetricLogger, MetricSeries
from tests.tracking_support import all_runs, client_for


def test_twenty_thousand_logs_are_all_in_the_store_exactly(store: Path):
    with mlops.track("many", experiment="exp") as run:
        for i in range(20_000):
            mlops.log(loss=1.0 / (i + 1))
    history = client_for(store).get_metric_history(run.run_id, "loss")
    history.sort(key=lambda m: m.step)
    assert [m.step for m in history] == list(range(20_000))
    assert [m.value for m in history] == [1.0 / (i + 1) for i in range(20_000)]
    summary = run.summary()
    assert summary.metrics["loss"].count == 20_000
    assert summary.metrics["loss"].last_value == 1.0 / 20_000
    assert "metric loss = 5e-05 at step 19999 (20000 values)" in repr(summary)


def test_buffer_is_bounded_and_the_caller_waits_instead_of_growing_memory(store: Path):
    with mlops.track("bounded", experiment="exp") as run:
        logger = MetricLogger(run.client, run.run_id, max_pending=500, interval=60)
        peak = 0
        for i in range(3000):
            logger.log(None, {"y": i})
            peak = max(peak, len(logger._pending))
        logger.close()
    assert peak <= 500
    history = client_for(store).get_metric_history(run.run_id, "y")
    assert sorted(m.value for m in history) == [float(i) for i in range(3000)]


def test_explicit_steps_and_per_metric_counters(store: Path):
    with mlops.track("steps", experiment="exp") as run:
        mlops.log(a=1.0)
        mlops.log(a=2.0, b=5.0)
        mlops.log(step=10, a=3.0)
        mlops.log(a=4.0)
    client = client_for(store)
    steps = {k: [m.step for m in client.get_metric_history(run.run_id, k)] for k in "ab"}
    assert sorted(steps["a"]) == [0, 1, 10, 11]
    assert steps["b"] == [0]


def test_non_numbers_are_usage_errors(store: Path):
    with (
        pytest.raises(mlops.MLOpsUsageError, match="is not a number"),
        mlops.track("bad", experiment="exp"),
    ):
        mlops.log(loss="low")
    assert all_runs(store)[0].info.status == "FAILED"


BAD_METRICS = [
    ({"x" * 300: 1.0}, None, "300 characters"),
    ({"x<y": 1.0}, None, "not valid in MLflow"),
    ({"../up": 1.0}, None, "not valid in MLflow"),
    ({"loss": 1.0}, 2**63, "does not fit in 64 bits"),
    ({"loss": 1.0}, -(2**63) - 1, "does not fit in 64 bits"),
    ({"loss": 1.0}, "3", "is not an integer"),
    ({"loss": 1.0}, 1.5, "is not an integer"),
    ({"loss": 1.0}, True, "is not an integer"),
    ({"loss": "high"}, None, "is not a number"),
]


def test_an_invalid_metric_is_refused_at_the_call_and_every_good_value_lands(store: Path):
    import numpy as np

    from jupyter_mlops.tracking.logger import MetricRefused

    with mlops.track("mixed", experiment="exp") as run:
        for i in range(5_000):
            mlops.log(loss=float(i))
        for metrics, step, says in BAD_METRICS:
            with pytest.raises(MetricRefused) as refused:
                mlops.log(step=step, **metrics)
            assert says in str(refused.value) and "\n" not in str(refused.value)
            assert isinstance(refused.value, mlops.MLOpsError)
        for i in range(5_000, 10_000):
            mlops.log(loss=float(i))
        mlops.log(step=np.int64(2**63 - 1), edge=1.0)  # the largest step MLflow stores
    history = client_for(store).get_metric_history(run.run_id, "loss")
    assert sorted(m.value for m in history) == [float(i) for i in range(10_000)]
    assert [m.step for m in client_for(store).get_metric_history(run.run_id, "edge")] == [2**63 - 1]
    assert run.status == "FINISHED"


def test_logging_after_the_run_ended_is_a_usage_error(store: Path):
    with mlops.track("done", experiment="exp") as run:
        pass
    with pytest.raises(mlops.MLOpsUsageError, match="has ended"):
        run.log(x=1)


def test_tensors_and_numpy_values_log_as_floats(store: Path):
    import numpy as np
    import torch

    with mlops.track("types", experiment="exp") as run:
        mlops.log(a=np.float64(0.25), b=torch.tensor(0.5), c=True)
    assert client_for(store).get_run(run.run_id).data.metrics == {"a": 0.25, "b": 0.5, "c": 1.0}


def test_series_thinning_keeps_the_newest_value():
    series = MetricSeries()
    for i in range(10_001):
        series.add(i, float(i))
    steps, values = series.points()
    assert len(steps) <= 402
    assert steps[0] == 0 and steps[-1] == 10_000 and values[-1] == 10_000.0
    assert steps == sorted(steps)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0.1"),
        (3, "3"),
        ("adam", "adam"),
        (None, "None"),
        ([1, 2.5, "x"], '[1, 2.5, "x"]'),
        ({"a": {"b": 1}}, '{"a": {"b": 1}}'),
        ((1, 2), "[1, 2]"),
        ({3, 1}, "[1, 3]"),
        (Path("data/x.csv"), "PosixPath('data/x.csv')"),
    ],
)
def test_params_render_faithfully(value: Any, text: str):
    assert render_param(value) == text


def test_large_objects_render_as_their_type_and_shape():
    import numpy as np

    assert render_param(np.zeros((100, 3))) == "<numpy.ndarray shape=(100, 3)>"
    with pytest.raises(mlops.MLOpsUsageError, match="6000-character"):
        render_param("x" * 7000)
