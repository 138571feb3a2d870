"""``%score`` / ``mlops.score``: batches in a child process, a predictions snapshot, a run and
its lineage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import jupyter_mlops as mlops
from jupyter_mlops import records
from jupyter_mlops.context import current_settings
from jupyter_mlops.errors import MLOpsNotFound, MLOpsUsageError
from jupyter_mlops.serving.scoring import score
from tests.registry_support import client


def churn_frame(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"customer": [f"c{i:03d}" for i in range(rows)], "a": rng.normal(size=rows)}
    )
    frame["b"] = rng.normal(size=rows)
    frame["churned"] = (frame.a + frame.b > 0).astype(int)
    return frame


def train_churn(home: Path, frame: pd.DataFrame) -> Any:
    """churn/1 trained on ``churn-data@v1`` (saved in its run), with the alias champion."""
    from sklearn.linear_model import LogisticRegression

    with mlops.track("train"):
        mlops.snapshot(frame, "churn-data")
        model = LogisticRegression().fit(frame[["a", "b"]], frame.churned)
        mlops.register(model, "churn", input_example=frame[["a", "b"]].head(3))
    client(home).set_registered_model_alias("churn", "champion", "1")
    return model


def test_a_snapshot_is_scored_into_a_predictions_snapshot_with_its_run_and_lineage(
    store: Path,
) -> None:
    frame = churn_frame()
    model = train_churn(store, frame)
    seen: list[tuple[int, int | None]] = []

    predictions = score(
        current_settings(),
        "churn@champion",
        "churn-data@v1",
        batch_rows=25,
        progress=lambda done, total: seen.append((done, total)),
    )

    assert predictions.ref == "churn-predictions@v1"
    assert seen == [(0, 60), (25, 60), (50, 60), (60, 60)]  # loaded, then batch by batch
    loaded = mlops.load(predictions.ref)
    # The columns the model does not read are the keys; the index is the data's.
    assert list(loaded.columns) == ["customer", "churned", "prediction"]
    pd.testing.assert_index_equal(loaded.index, frame.index)
    assert loaded.customer.tolist() == frame.customer.tolist()
    assert loaded.prediction.tolist() == model.predict(frame[["a", "b"]]).tolist()

    run = client(store).search_runs(
        [client(store).get_experiment_by_name("Default").experiment_id],
        filter_string=f"tags.`{records.TAG_SCORE_MODEL}` = 'churn/1'",
    )[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["model"] == "churn"
    assert run.data.params["version"] == "1"
    assert run.data.params["data"] == "churn-data@v1"
    assert run.data.metrics["rows"] == 60
    assert run.data.metrics["rows_per_s"] > 0
    assert {(i.ref, i.operation) for i in records.snapshot_inputs(run)} == {
        ("churn-data@v1", "loaded"),
        ("churn-predictions@v1", "saved"),
    }

    for subject in ("churn-predictions@v1", "churn@champion"):
        graph = mlops.lineage(subject).to_json()
        labels = {n["id"]: n["label"] for n in graph["nodes"]}
        links = {(labels[e["source"]], labels[e["target"]], e["relation"]) for e in graph["edges"]}
        assert ("churn-data@v1", "churn/1", "scored by") in links, subject
        assert ("churn/1", "churn-predictions@v1", "predicted") in links, subject
        assert ("train", "churn/1", "registered") in links, subject


def test_score_magic_streams_a_dataframe_to_a_child_process_and_keeps_its_index(
    store: Path, ip: Any
) -> None:
    kernel = os.getpid()

    def which_process(model_input: pd.DataFrame) -> list[int]:
        return [os.getpid()] * len(model_input)

    with mlops.track("callable"):
        mlops.register(which_process, "pid")
    frame = pd.DataFrame({"x": range(23)}, index=pd.Index([f"r{i}" for i in range(23)], name="id"))

    ip.user_ns["frame"] = frame

    predictions = ip.run_line_magic("score", "pid frame --name pids --key x --batch-rows 5")

    loaded = mlops.load(predictions.ref)
    assert loaded.index.tolist() == frame.index.tolist()
    assert loaded.x.tolist() == list(range(23))
    scorers = set(loaded.prediction)
    assert len(scorers) == 1 and kernel not in scorers  # one child process, never the kernel


def test_a_parquet_file_is_streamed_by_the_scorer(store: Path, tmp_path: Path) -> None:
    frame = churn_frame(40)
    model = train_churn(store, frame)
    path = tmp_path / "batch.parquet"
    frame.to_parquet(path, row_group_size=8)

    predictions = mlops.score("churn/1", str(path), name="parquet-scores", batch_rows=16)

    loaded = mlops.load(predictions.ref)
    assert loaded.prediction.tolist() == model.predict(frame[["a", "b"]]).tolist()
    assert loaded.index.tolist() == list(range(40))  # row numbers across batches


def test_bad_requests_are_one_line_errors_and_publish_nothing(store: Path, ip: Any) -> None:
    frame = churn_frame(20)
    train_churn(store, frame)

    with pytest.raises(MLOpsNotFound, match="has no alias 'production'"):
        mlops.score("churn@production", "churn-data@v1")
    with pytest.raises(MLOpsUsageError, match="batch-rows must be 1 or more"):
        mlops.score("churn@champion", "churn-data@v1", batch_rows=0)
    with pytest.raises(MLOpsUsageError, match="cannot score a list"):
        mlops.score("churn@champion", [1, 2, 3])

    ip.user_ns["broken"] = frame.drop(columns=["b"])
    with pytest.raises(UsageError) as failed:
        ip.run_line_magic("score", "churn@champion broken --name broken")
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("%score: scoring churn@champion failed after 0 of 20 rows")
    assert "no column 'b'" in message and "run %score again" in message
    assert mlops.snapshots("broken").empty
    failed_runs = client(store).search_runs(
        [client(store).get_experiment_by_name("Default").experiment_id],
        filter_string="attributes.status = 'FAILED'",
    )
    assert [r.data.tags[records.TAG_SCORE_MODEL] for r in failed_runs] == ["churn/1"]


def test_sources_cut_any_stream_into_exact_batches_and_name_what_they_refuse(
    tmp_path: Path,
) -> None:
    import pyarrow as pa

    from jupyter_mlops.serving import score_sources

    table = pa.table({"x": list(range(23))})
    uneven = table.to_batches(max_chunksize=4) + table.slice(0, 0).to_batches()
    frames = list(score_sources._rebatched(uneven, 10))
    assert [len(f) for f in frames] == [10, 10, 3]
    assert pd.concat(frames).x.tolist() == list(range(23))

    settings = current_settings()
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    assert score_sources.describe(settings, reader).rows is None  # a stream: counted as read
    assert score_sources.describe(settings, table).rows == 23
    folder = tmp_path / "parts"
    folder.mkdir()
    for part in range(2):
        pd.DataFrame({"x": range(5)}).to_parquet(folder / f"{part}.parquet")
    described = score_sources.describe(settings, str(folder))
    assert (described.kind, described.rows) == ("parquet", 10)
    with pytest.raises(MLOpsUsageError, match="cannot score a dict"):
        score_sources.describe(settings, {"x": [1]})
