"""Helpers of the monitoring tests: a model trained on a snapshot, and synthetic traffic written
through serving's own inference-log writer (no server needed)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.serving.traffic import TrafficWriter

START = dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.UTC)
FEATURES = ("age", "income", "plan")


def training_frame(rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows),
            "income": rng.normal(50, 15, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
        }
    )
    frame["churn"] = (frame["age"] + rng.normal(0, 5, rows) > 45).astype(int)
    return frame


class AgeRule:
    """A tiny classifier as a callable model: churn when age > 45."""

    def __call__(self, frame: pd.DataFrame) -> Any:
        return (frame["age"] > 45).astype(int).to_numpy()


def trained_model(name: str = "churn", alias: str = "prod") -> pd.DataFrame:
    """Snapshot the training data inside a run, register the model, point ``alias`` at it."""
    train = training_frame()
    with mlops.track("train", params={"rule": "age>45"}):
        mlops.snapshot(train, "churn-train")
        mlops.log(accuracy=0.9)
    mlops.register(AgeRule(), name, input_example=train[list(FEATURES)].head(3))
    mlops.promote(f"{name}/1", to=alias, require="metrics.accuracy >= 0.5")
    return train


def write_traffic(
    model: str = "churn",
    alias: str = "prod",
    hours: int = 6,
    requests_per_hour: int = 100,
    rows_per_request: int = 10,
    shifted: tuple[int, ...] = (3,),
    seed: int = 1,
) -> pd.DataFrame:
    """``hours`` hourly windows of requests written through serving's TrafficWriter; in the
    ``shifted`` hours age and income move far from the training data. Returns one row per
    logged row: request_id, hour, the true label and the prediction."""
    rng = np.random.default_rng(seed)
    rows = []
    size = rows_per_request
    with TrafficWriter(current_settings(), model, alias=alias, flush_seconds=60) as log:
        for hour in range(hours):
            frame = training_frame(requests_per_hour * size, seed=seed + 100 + hour)
            if hour in shifted:
                frame["age"] = frame["age"] + 25
                frame["income"] = frame["income"] + 40
            predictions = (frame["age"] > 45).astype(int).to_numpy()
            columns = {name: frame[name].to_numpy() for name in FEATURES}
            for i in range(requests_per_hour):
                request_id = f"r{hour:02d}-{i:04d}"
                part = slice(i * size, (i + 1) * size)
                stamp = START + dt.timedelta(hours=hour, seconds=int(i * 3600 / requests_per_hour))
                log.log(
                    inputs={name: values[part] for name, values in columns.items()},
                    outputs=predictions[part],
                    version="1",
                    latency_ms=float(rng.uniform(1, 3)),
                    request_id=request_id,
                    timestamp=stamp,
                )
                truth = frame["churn"].to_numpy()[part]
                rows += [
                    (request_id, hour, t, p) for t, p in zip(truth, predictions[part], strict=True)
                ]
    return pd.DataFrame(rows, columns=["request_id", "hour", "truth", "predicted"])
