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
from jupyter_mlops.config import MLOps
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


@pytest.fixture(scope="module")
def churn(shared_home: Path) -> Any:
    """churn/1 trained on ``churn-data@v1`` (saved in its run), alias champion: once a module."""
    from sklearn.linear_model import LogisticRegression

    saved = dict(os.environ)
    os.environ.update({"MLOPS_HOME": str(shared_home), "MLOPS_EXPERIMENT": "train"})
    MLOps.clear_instance()
    try:
        frame = churn_frame()
        with mlops.track("train"):
            mlops.snapshot(frame, "churn-data")
            model = LogisticRegression().fit(frame[["a", "b"]], frame.churned)
            mlops.register(model, "churn", input_example=frame[["a", "b"]].head(3))
        client(shared_home).set_registered_model_alias("churn", "champion", "1")
        return model
    finally:
        os.environ.clear()
        os.environ.update(saved)
        MLOps.clear_instance()


def scoring_runs(home: Path, pinned: str) -> list[Any]:
    """This test's scoring runs of ``pinned`` (each test has an experiment of its own)."""
    store = client(home)
    experiment = store.get_experiment_by_name(current_settings().experiment)
    if experiment is None:
        return []
    return store.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{records.TAG_SCORE_MODEL}` = '{pinned}'",
    )


def test_a_snapshot_is_scored_into_a_predictions_snapshot_with_its_run_and_lineage(
    registry_store: Path, churn: Any
) -> None:
    frame, model = churn_frame(), churn
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

    [run] = scoring_runs(registry_store, "churn/1")
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
    registry_store: Path, ip: Any
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


def test_a_parquet_file_is_streamed_by_the_scorer(
    registry_store: Path, churn: Any, tmp_path: Path
) -> None:
    frame, model = churn_frame(40), churn
    path = tmp_path / "batch.parquet"
    frame.to_parquet(path, row_group_size=8)

    predictions = mlops.score("churn/1", str(path), name="parquet-scores", batch_rows=16)

    loaded = mlops.load(predictions.ref)
    assert loaded.prediction.tolist() == model.predict(frame[["a", "b"]]).tolist()
    assert loaded.index.tolist() == list(range(40))  # row numbers across batches


def test_bad_requests_are_one_line_errors_before_any_process_or_run(
    registry_store: Path, churn: Any, ip: Any
) -> None:
    frame = churn_frame(20)
    with pytest.raises(MLOpsNotFound, match="has no alias 'production'"):
        mlops.score("churn@production", "churn-data@v1")
    with pytest.raises(MLOpsUsageError, match="batch-rows must be 1 or more"):
        mlops.score("churn@champion", "churn-data@v1", batch_rows=0)
    with pytest.raises(MLOpsUsageError, match="cannot score a list"):
        mlops.score("churn@champion", [1, 2, 3])
    with pytest.raises(MLOpsUsageError, match="has no column 'region'"):
        mlops.score("churn@champion", frame, keys=["region"])

    ip.user_ns["broken"] = frame.drop(columns=["b"])
    with pytest.raises(UsageError) as failed:
        ip.run_line_magic("score", "churn@champion broken --name broken")
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("%score: DataFrame has no column 'b' (it has: customer, a, churned)")
    assert "churn/1 reads a, b" in message
    assert mlops.snapshots("broken").empty
    assert scoring_runs(registry_store, "churn/1") == []  # refused before a run was opened


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
