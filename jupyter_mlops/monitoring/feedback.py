"""``mlops.feedback``: ground truth and business outcomes of served requests, joined by request id.

A request that scored several rows takes one label per row: repeat its id once per row, in the
order of its rows. Append-only: every call writes one new Parquet file under
``<home>/monitoring/feedback/<model>/`` (written beside, then renamed into place), so any number
of writers never touch each other's files and a reader never sees half a file. A request labelled
twice keeps its latest label.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import records
from ..config import Settings
from ..errors import MLOpsUsageError
from .naming import model_name, slug

if TYPE_CHECKING:
    import pandas as pd

REQUEST_ID = records.TRAFFIC_REQUEST_ID  # the inference log's key
ROW = "row"  # the row within its request (0 for single-row requests)
KEY = (REQUEST_ID, ROW)


def feedback_folder(settings: Settings, name: str) -> Path:
    return settings.home / records.MONITORING_DIRNAME / records.FEEDBACK_DIRNAME / slug(name)


def feedback(
    settings: Settings,
    model: str,
    request_ids: Sequence[Any],
    labels: Sequence[Any] | None = None,
    **outcomes: Sequence[Any],
) -> int:
    """Store labels (and outcome columns) for ``request_ids``; returns how many rows were kept."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = model_name(model)
    ids = _as_list(request_ids, "request_ids")
    if not ids:
        raise MLOpsUsageError(
            "feedback: request_ids is empty; pass the ids of the answered requests"
        )
    columns: dict[str, list[Any]] = {REQUEST_ID: [str(i) for i in ids]}
    given: Mapping[str, Sequence[Any] | None] = {records.FEEDBACK_LABEL: labels, **outcomes}
    for column, values in given.items():
        if values is None:
            continue
        if column in (REQUEST_ID, ROW, records.FEEDBACK_RECEIVED):
            raise MLOpsUsageError(f"feedback: {column!r} is a reserved name; rename that outcome")
        listed = _as_list(values, column)
        if len(listed) != len(ids):
            raise MLOpsUsageError(
                f"feedback: {column} has {len(listed)} values for {len(ids)} request ids; "
                "give one value per request"
            )
        columns[column] = listed
    if len(columns) == 1:
        raise MLOpsUsageError("feedback: give labels and/or outcome columns (name=values)")
    frame = pd.DataFrame(columns)
    frame.insert(1, ROW, frame.groupby(REQUEST_ID).cumcount())
    frame[records.FEEDBACK_RECEIVED] = pd.Timestamp.now(tz="UTC")
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MLOpsUsageError(f"feedback: cannot store these values ({exc})") from None
    folder = feedback_folder(settings, name)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
    partial = folder / f".{stem}.partial"
    pq.write_table(table, partial)
    os.replace(partial, folder / f"{stem}.parquet")
    return len(frame)


def read_feedback(settings: Settings, model: str) -> pd.DataFrame | None:
    """Every label and outcome stored for the model, one row per request row (latest wins)."""
    import pandas as pd
    import pyarrow.parquet as pq

    folder = feedback_folder(settings, model_name(model))
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    frames = [pq.read_table(path).to_pandas() for path in files]
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.drop_duplicates(list(KEY), keep="last")
    return frame.drop(columns=[records.FEEDBACK_RECEIVED]).reset_index(drop=True)


def _as_list(values: Any, what: str) -> list[Any]:
    if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
        raise MLOpsUsageError(f"feedback: {what} must be a list, array or Series of values")
    return list(values.tolist() if hasattr(values, "tolist") else values)
