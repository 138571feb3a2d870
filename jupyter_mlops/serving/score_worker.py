"""The scoring process of ``%score``: ``python -m jupyter_mlops.serving.score_worker SPEC MARKER``.

It dies with the kernel (``PR_SET_PDEATHSIG``), loads the pinned model version, reads its source
batch by batch, predicts, and saves the predictions as a snapshot linked to the kernel's scoring
run. Events go to the kernel as JSON lines on their own pipe (``events_fd``), so whatever the
model prints cannot garble them; stdout and stderr go to a log the kernel reads on failure.
The snapshot is published atomically after the last batch: a process killed earlier leaves no
predictions version. MARKER only names the process (the kernel's stop checks it is still ours).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..config import Settings
from ..distributed.procs import die_with_parent
from ..errors import MLOpsError
from ..tracking import active
from . import score_sources

if TYPE_CHECKING:
    import pandas as pd

PREDICTION = "prediction"


def settings_of(spec: dict[str, Any]) -> Settings:
    values = dict(spec["settings"])
    values["home"] = Path(values["home"])
    values["notebook"] = Path(values["notebook"]) if values.get("notebook") else None
    return Settings(**values)


def model_inputs(model: Any) -> list[str]:
    """The column names the model's signature asks for ([] when it names none)."""
    return score_sources.named_inputs(model.metadata.get_input_schema() if model.metadata else None)


def predictions_of(
    model: Any, batch: pd.DataFrame, features: list[str], keys: Sequence[str], offset: int
) -> pd.DataFrame:
    """The batch's key columns (same index) and its predictions."""
    import numpy as np
    import pandas as pd

    if isinstance(batch.index, pd.RangeIndex) and batch.index.start == 0:
        batch = batch.set_axis(pd.RangeIndex(offset, offset + len(batch)))  # rows of the whole
    missing = [c for c in [*features, *keys] if c not in batch.columns]
    if missing:
        raise MLOpsError(
            f"the data has no column {', '.join(map(repr, missing))} "
            f"(it has: {', '.join(map(str, batch.columns))}); score data with the model's inputs"
        )
    inputs = batch[features] if features else batch.drop(columns=list(keys))
    kept = list(keys) if keys or not features else [c for c in batch.columns if c not in features]
    result = batch[kept].copy()
    output = model.predict(inputs)
    if isinstance(output, pd.DataFrame):
        if output.shape[1] == 1:
            result[PREDICTION] = output.iloc[:, 0].to_numpy()
        else:
            for column in output.columns:
                result[f"{PREDICTION}_{column}"] = output[column].to_numpy()
        return result
    values = np.asarray(output)
    if values.ndim == 2 and values.shape[1] > 1:
        for i in range(values.shape[1]):
            result[f"{PREDICTION}_{i}"] = values[:, i]
    else:
        result[PREDICTION] = values.reshape(len(batch))
    return result


def run(spec: dict[str, Any], events: IO[str], stdin: IO[bytes]) -> None:
    import mlflow.pyfunc
    import pandas as pd

    from ..snapshots import service

    def emit(event: str, **fields: Any) -> None:
        events.write(json.dumps({"event": event, **fields}) + "\n")
        events.flush()

    settings = settings_of(spec)
    handle = active.ActiveRun(spec["run_id"], settings.tracking_uri)
    active.push(handle)  # the snapshots this process loads and saves are the run's inputs
    try:
        model = mlflow.pyfunc.load_model(spec["model_uri"])
        features = [c for c in model_inputs(model) if c not in spec["keys"]]
        emit("loaded")
        started = time.monotonic()
        pieces = []
        done = 0
        for batch in score_sources.batches(
            settings, spec["source"], stdin, int(spec["batch_rows"])
        ):
            pieces.append(predictions_of(model, batch, features, spec["keys"], done))
            done += len(batch)
            emit("progress", rows=done)
        seconds = time.monotonic() - started
        if not pieces:
            raise MLOpsError("the data has no rows; nothing to score")
        frame = pd.concat(pieces) if len(pieces) > 1 else pieces[0]
        snapshot = service.snapshot(settings, frame, spec["name"], message=spec["message"])
        emit("done", rows=done, seconds=seconds, snapshot=dataclasses.asdict(snapshot))
    finally:
        active.pop(handle)


def main(argv: list[str]) -> int:
    die_with_parent()
    spec = json.loads(argv[1])
    if os.getppid() != spec["kernel_pid"]:  # the kernel died before we asked to die with it
        return 1
    with os.fdopen(int(spec["events_fd"]), "w", encoding="utf-8") as events:
        try:
            run(spec, events, sys.stdin.buffer)
        except Exception as exc:  # the kernel shows the first line; the log keeps the rest
            import traceback

            traceback.print_exc()
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, MLOpsError):
                message = f"{type(exc).__name__}: {message}"
            events.write(json.dumps({"event": "error", "message": message}) + "\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
