"""The inference log without a server (as monitoring tests write it), and ``%serve``'s one-line
errors for what it cannot serve."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import jupyter_mlops as mlops
from jupyter_mlops import records
from jupyter_mlops.config import Settings, resolve_settings
from jupyter_mlops.errors import MLOpsUsageError
from jupyter_mlops.serving.deployments import list_deployments, percentile
from jupyter_mlops.serving.traffic import TrafficWriter, read_traffic
from tests.serving_support import wait_until

UTC = dt.UTC


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return resolve_settings(tmp_path, flags={"home": str(tmp_path / ".mlops")}, env={})


def test_rows_columns_and_types_as_monitoring_reads_them(settings: Settings) -> None:
    with TrafficWriter(settings, "churn", "prod") as log:
        log.log(
            inputs=pd.DataFrame({"age": [30, 40], "city": ["a", "b"]}),
            outputs=np.array([0.2, 0.9]),
            features=pd.DataFrame({"age2": [900, 1600]}),
            version=3,
            latency_ms=1.5,
            request_id="r1",
        )
        log.log(inputs=None, status=400, version="3", request_id="r2")
        log.log(inputs={"age": [50]}, outputs=pd.DataFrame({"p": [0.1], "q": [0.9]}), version=4)
    frame = read_traffic(settings, "churn", "prod")
    assert list(frame.columns) == [
        *records.TRAFFIC_FIXED_COLUMNS,
        "age",
        "city",
        "prediction",
        "prediction.p",
        "prediction.q",
        "feature.age2",
    ]
    assert frame[records.TRAFFIC_REQUEST_ID].tolist()[:3] == ["r1", "r1", "r2"]
    assert frame[records.TRAFFIC_VERSION].tolist() == ["3", "3", "3", "4"]
    assert frame[records.TRAFFIC_STATUS].tolist() == [200, 200, 400, 200]
    assert str(frame[records.TRAFFIC_TIMESTAMP].dtype).startswith("datetime64")
    assert frame[records.TRAFFIC_TIMESTAMP].dt.tz is not None
    assert frame["prediction"].tolist()[:2] == [0.2, 0.9]
    assert frame["feature.age2"].tolist()[:2] == [900, 1600]
    assert frame[records.TRAFFIC_MODEL].unique().tolist() == ["churn"]


def test_since_until_alias_and_the_empty_log(settings: Settings) -> None:
    old = dt.datetime(2026, 1, 1, 12, tzinfo=UTC)
    with TrafficWriter(settings, "m", "prod") as log:
        for hours in range(5):
            log.log(
                inputs={"x": [hours]}, outputs=[hours], timestamp=old + dt.timedelta(hours=hours)
            )
    with TrafficWriter(settings, "m", "canary") as log:
        log.log(inputs={"x": [99]}, outputs=[1])
    assert read_traffic(settings, "m", "prod")["x"].tolist() == [0, 1, 2, 3, 4]
    window = read_traffic(
        settings, "m", "prod", since="2026-01-01 13:00", until=old.replace(hour=15)
    )
    assert window["x"].tolist() == [1, 2]
    assert read_traffic(settings, "m", since=dt.timedelta(hours=1))["x"].tolist() == [99]
    assert len(read_traffic(settings, "m")) == 6
    empty = read_traffic(settings, "nothing", "prod")
    assert empty.empty and list(empty.columns) == list(records.TRAFFIC_FIXED_COLUMNS)


def test_the_buffer_is_bounded_and_close_loses_nothing_it_accepted(settings: Settings) -> None:
    log = TrafficWriter(settings, "m", "prod", flush_seconds=3600, max_records=50)
    kept = [i for i in range(80) if log.log(inputs={"x": [i]}, outputs=[i])]
    # A full buffer wakes the flush thread, which may empty it while the loop still runs.
    assert kept[:50] == list(range(50)) and log.dropped == 80 - len(kept) > 0
    log.close()
    assert read_traffic(settings, "m", "prod")["x"].tolist() == kept
    with pytest.raises(MLOpsUsageError, match="closed"):
        log.log(inputs={"x": [1]})


def test_a_flush_that_cannot_write_keeps_its_rows_for_the_next(settings: Settings) -> None:
    log = TrafficWriter(settings, "m", "prod", flush_seconds=3600)
    for i in range(30):
        log.log(inputs={"x": [i]}, outputs=[i])
    log.folder.parent.mkdir(parents=True, exist_ok=True)
    log.folder.write_text("in the way")  # the fault: the log's folder cannot be made
    with pytest.raises(OSError):
        log.flush()
    log.log(inputs={"x": [30]}, outputs=[30])
    log.folder.unlink()
    assert log.flush() == 31 and log.written == 31
    log.close()
    assert read_traffic(settings, "m", "prod")["x"].tolist() == list(range(31))


def test_writers_in_threads_and_a_background_flush_keep_every_row(settings: Settings) -> None:
    log = TrafficWriter(settings, "m", "prod", flush_seconds=0.01)

    def write(offset: int) -> None:
        for i in range(100):
            log.log(inputs={"x": [offset + i]}, outputs=[0])

    for half in (0, 100):
        threads = [threading.Thread(target=write, args=(k * 1000 + half,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if not half:  # the background thread writes the first half while nothing closes it
            wait_until(lambda: log.written == 400, 30, "a background flush")
    log.close()
    logged = read_traffic(settings, "m", "prod")["x"]
    assert sorted(logged) == sorted(k * 1000 + i for k in range(4) for i in range(200))
    assert len(list(log.folder.rglob("*.parquet"))) > 1


def test_sampling_keeps_about_its_share_and_unframeable_inputs_still_log_the_request(
    settings: Settings,
) -> None:
    with TrafficWriter(settings, "m", "prod", sample=0.1) as log:
        kept = sum(log.wants() for _ in range(5000))
        log.log(inputs={"a": [1, 2], "b": [1]}, outputs=object(), status=200, request_id="odd")
    assert 350 < kept < 650
    odd = read_traffic(settings, "m", "prod")
    assert odd[records.TRAFFIC_REQUEST_ID].tolist() == ["odd"]
    with pytest.raises(MLOpsUsageError, match="share"):
        TrafficWriter(settings, "m", "prod", sample=2)


def test_a_micro_batch_logs_each_request_with_its_own_rows_and_predictions_sampled_whole(
    settings: Settings,
) -> None:
    import numpy as np
    import pandas as pd

    rows = [2, 1, 3] * 100  # requests of 2, 1 and 3 rows answered together
    inputs = pd.DataFrame({"x": np.arange(sum(rows), dtype=float)})
    ids = [f"r{i}" for i in range(len(rows))]
    owner = np.repeat(ids, rows)
    for alias, sample in (("all", 1.0), ("some", 0.5)):
        with TrafficWriter(settings, "batched", alias, sample=sample) as log:
            outputs = inputs["x"].to_numpy() * 10
            log.log_rows(request_ids=ids, rows=rows, latencies_ms=[1.0] * len(rows),
                         version="2", inputs=inputs, outputs=outputs)  # fmt: skip
        logged = read_traffic(settings, "batched", alias)
        assert (logged["prediction"] == logged["x"] * 10).all()
        assert (logged[records.TRAFFIC_REQUEST_ID] == owner[logged["x"].astype(int)]).all()
        per_request = logged.groupby(records.TRAFFIC_REQUEST_ID).size()
        assert all(per_request[r] == rows[int(r[1:])] for r in per_request.index)
        assert set(logged[records.TRAFFIC_VERSION]) == {"2"}
        assert (len(per_request) == len(ids)) if sample == 1 else 90 < len(per_request) < 210


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, q) for q in (0.5, 0.95, 0.99)] == [50.0, 95.0, 99.0]
    assert percentile([], 0.5) is None


def test_serve_refuses_in_one_line_what_it_cannot_serve(
    ip: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(settings.home))
    cases = {
        "": "say what to serve",
        "clf": "follows an alias; write NAME@ALIAS",
        "clf/2": "follows an alias",
        "clf@prod --host example.org": "is not an IP address",
        "clf@prod --log-sample 3": "is not a share",
        "clf@prod": "no registered model 'clf'",
        "stop nothing": "no endpoint named 'nothing'",
        "status extra": "takes no name",
        "clf@prod --export helm": "--export 'helm' is not known",
        "stauts": "did you mean",
    }
    for line, message in cases.items():
        with pytest.raises(UsageError, match=message.replace("(", r"\(")):
            ip.run_line_magic("serve", line)
    assert repr(ip.run_line_magic("serve", "status")).startswith("no endpoints")
    assert list_deployments(settings) == []
    with pytest.raises(MLOpsUsageError, match="per alias"):
        mlops.traffic("clf/1")
    assert mlops.traffic("clf@prod").empty


def test_a_traffic_frame_freezes_with_snapshot_like_any_frame(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(settings.home))
    with TrafficWriter(settings, "m", "prod") as log:
        log.log(inputs=pd.DataFrame({"a": [1.0, 2.0]}), outputs=np.array([0, 1]), version="1")
    frame = mlops.traffic("m@prod")
    mlops.snapshot(frame, name="traffic-m")
    pd.testing.assert_frame_equal(mlops.load("traffic-m"), frame)


def test_buffered_numeric_requests_leave_nothing_for_the_garbage_collector(
    settings: Settings,
) -> None:
    """A logged request of numbers waits for the flush as bytes and flat arrays: the objects the
    collector tracks do not grow with the requests buffered (a frame each would add dozens)."""
    import gc

    log = TrafficWriter(settings, "m", "prod", flush_seconds=3600)
    outputs = np.array([1])

    def request(i: int) -> None:
        inputs = pd.DataFrame([[0.5 * i, 1.0]], columns=["a", "b"])
        log.log_rows(request_ids=[f"r{i}"], rows=[1], latencies_ms=[1.0], version="1",
                     inputs=inputs, outputs=outputs, layout=("1", "ab"))  # fmt: skip

    request(0)
    gc.collect()
    tracked = len(gc.get_objects())
    for i in range(1, 2000):
        request(i)
    gc.collect()
    assert len(gc.get_objects()) - tracked < 100
    log.close()
    logged = read_traffic(settings, "m", "prod")
    assert logged["a"].tolist() == [0.5 * i for i in range(2000)]
    assert logged[records.TRAFFIC_REQUEST_ID].tolist() == [f"r{i}" for i in range(2000)]
    assert logged["prediction"].unique().tolist() == [1]


def test_frames_of_one_layout_with_other_dtypes_log_what_each_held(settings: Settings) -> None:
    """Packed and whole requests of the same columns in one flush, and a layout key whose frames
    changed dtypes (an int column beyond int64, floats where ints were), log the same values and
    types as frames kept whole always did."""
    frames = [
        pd.DataFrame({"a": [1, 2], "b": [3, 4]}),
        pd.DataFrame({"a": [1.5], "b": [5]}),
        pd.DataFrame({"a": [2**63 + 1], "b": [6]}),  # uint64: not a number float64 keeps
        pd.DataFrame({"a": [2**60 + 1], "b": [0.5]}),  # as float64 it would not be exact
    ]
    with TrafficWriter(settings, "m", "prod", flush_seconds=3600) as log:
        for i, frame in enumerate(frames):
            log.log_rows(request_ids=[f"r{i}"], rows=[len(frame)], latencies_ms=[1.0],
                         version="1", inputs=frame, outputs=np.arange(len(frame)),
                         layout="one key")  # fmt: skip
    logged = read_traffic(settings, "m", "prod")
    whole = pd.concat(frames, ignore_index=True)
    assert logged["a"].tolist() == whole["a"].tolist()
    assert logged["b"].tolist() == whole["b"].tolist()
    assert logged["prediction"].tolist() == [0, 1, 0, 0, 0]
    with TrafficWriter(settings, "n", "prod", flush_seconds=3600) as log:
        log.log(inputs=pd.DataFrame({"a": [1, 2]}), outputs=np.array([0.5, 0.25]))
        log.log(inputs=pd.DataFrame({"a": [3]}), outputs=np.array([], dtype=float))
        log.log(inputs=pd.DataFrame({"a": [4]}), outputs=np.zeros((1, 0)))
    logged = read_traffic(settings, "n", "prod")  # outputs of no value: the rows, no prediction
    assert str(logged["a"].dtype) == "int64" and logged["a"].tolist() == [1, 2, 3, 4]
    assert logged["prediction"].tolist()[:2] == [0.5, 0.25]
    assert logged["prediction"][2:].isna().all()


def test_a_micro_batch_of_double_columns_is_the_frame_mlflow_would_cast() -> None:
    """The endpoint builds a micro-batch of an all-double signature as one float64 array: the
    same values and dtypes as MLflow's frame cast column by column, ints and huge ints too."""
    from mlflow.types.schema import ColSpec, Schema

    from jupyter_mlops.serving.follow import Served
    from jupyter_mlops.serving.server import all_double, stacked_frame

    schema = Schema([ColSpec("double", "a"), ColSpec("double", "b"), ColSpec("long", "n")])
    served = Served(version="1", model=None, input_schema=schema)
    assert all_double(schema, ("a", "b")) and all_double(schema, ("b",))
    assert not all_double(schema, ("a", "n")) and not all_double(schema, ("a", "extra"))
    assert not all_double(None, ("a",))
    for rows in ([[0.1, 0.9]], [[1, 2], [3, 4]], [[2**70, -0.5], [-(2**64), 1e308]]):
        cast = stacked_frame(served, ["a", "b"], rows, double=False)
        fast = stacked_frame(served, ["a", "b"], rows, double=True)
        pd.testing.assert_frame_equal(fast, cast, check_exact=True)


def test_micro_batches_of_a_known_layout_log_what_the_general_way_logs(settings: Settings) -> None:
    """The endpoint's micro-batches of one layout take a short way into the buffer (appended to
    the segment the layout's last block went to): the same rows as the general way, across a
    flush, other shapes between them, dtypes and outputs the short way cannot take, a full
    buffer and a closed writer."""
    floats = pd.DataFrame([[0.5, 1.0], [1.5, 2.0], [2.5, 3.0]], columns=["a", "b"])
    calls: list[tuple[list[int], pd.DataFrame, Any]] = [
        ([1], floats.iloc[:1], np.array([1])),
        ([2, 1], floats, np.array([0, 1, 0])),  # requests of 2 and 1 rows
        ([1], floats.iloc[1:2], np.array([1])),
        ([1], pd.DataFrame({"a": [7], "b": [8]}), np.array([1])),  # ints: another dtype
        ([1], floats.iloc[2:], np.array([[0.25, 0.75]])),  # 2-D outputs: another shape
        ([2], floats.iloc[:2], np.array([1, 0, 1, 0])[::2]),  # outputs not contiguous
        ([1], pd.DataFrame({"a": [2**60 + 1], "b": [0.5]}), np.array([1])),  # inexact
        ([1], floats.iloc[:1], np.array([0])),
    ]
    for alias, layout in (("short", ("1", "ab")), ("general", None)):
        log = TrafficWriter(settings, "m", alias, flush_seconds=3600)
        for i, (rows, frame, outputs) in enumerate(calls * 3):
            if i == 5:
                log.flush()  # the lane's segment is gone from the buffer: a fresh one
            if i == 10:
                log.log(inputs={"t": ["text"]}, outputs=[5], request_id="other")
            log.log_rows(request_ids=[f"r{i}-{j}" for j in range(len(rows))], rows=rows,
                         latencies_ms=[1.0] * len(rows), version="1", inputs=frame,
                         outputs=outputs, layout=layout)  # fmt: skip
        log.close()
    short, general = (read_traffic(settings, "m", a).drop(columns=records.TRAFFIC_TIMESTAMP)
                      for a in ("short", "general"))  # fmt: skip
    pd.testing.assert_frame_equal(short, general)
    assert len(short) == 3 * 11 + 1 and short["a"].iloc[-1] == 0.5

    log = TrafficWriter(settings, "m", "full", flush_seconds=3600, max_records=5)
    kept = [log.log_rows(request_ids=[f"r{i}"], rows=[1], latencies_ms=[1.0], version="1",
                         inputs=floats.iloc[:1], outputs=np.array([i]), layout="k")
            for i in range(8)]  # fmt: skip
    assert kept == [True] * 5 + [False] * 3 and log.dropped == 3
    log.close()
    assert read_traffic(settings, "m", "full")["prediction"].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(MLOpsUsageError, match="closed"):
        log.log_rows(request_ids=["late"], rows=[1], latencies_ms=[1.0], version="1",
                     inputs=floats.iloc[:1], outputs=np.array([1]), layout="k")  # fmt: skip


def test_a_flush_of_segments_builds_the_table_the_general_way_builds() -> None:
    """A flush of the endpoint's usual segments builds its Arrow table from their arrays: the
    same table, types and column order as the general way, for floats, ints and bools, several
    segments (a version switch), NaN, and none for what it does not take."""
    from jupyter_mlops.serving.traffic import blocks_table, segments_table

    def entries(frames: list[tuple[str, pd.DataFrame, Any]], status: int = 200) -> list[Any]:
        log = TrafficWriter(Path("/nonexistent"), "m", "prod", flush_seconds=3600)
        for i, (version, frame, outputs) in enumerate(frames):
            log.log(inputs=frame, outputs=outputs, version=version, status=status,
                    latency_ms=0.5 * i, request_id=f"r{i}")  # fmt: skip
        buffered = list(log._buffer)
        log._buffer.clear()  # nothing to write at close
        log.close()
        return buffered

    ab = pd.DataFrame({"a": [0.5], "b": [np.nan]})
    cases = [
        [("1", ab, np.array([1])), ("1", ab, np.array([0])), ("2", ab, np.array([1]))],
        [("1", pd.DataFrame({"a": [3], "b": [4]}), np.array([0.25]))] * 3,
        [("1", pd.DataFrame({"a": [True], "b": [False]}), np.array([True]))] * 2,
        [("1", pd.DataFrame({"x": [1.0], "y": [2]}), np.array([2.5]))],  # mixed: as float
    ]
    for case in cases:
        buffered = entries(case)
        fast = segments_table(buffered, "m")
        assert fast is not None
        general = blocks_table([e.block() for e in buffered], "m")
        assert fast.equals(general), (fast.schema, general.schema)
    others = [
        entries([("1", ab, np.array([[1, 2]]))]),  # 2-D outputs
        entries([("1", pd.DataFrame({"a": [1, 2]}), np.array([0, 1]))]),  # a request of 2 rows
        entries([("1", pd.DataFrame({"a": [1.0]}), np.array([0], dtype=np.int32))]),
        entries([("1", pd.DataFrame({"prediction": [1.0]}), np.array([0]))]),  # a log name
        entries([("1", ab, np.array([0])), ("1", pd.DataFrame({"a": [1.0]}), np.array([0]))]),
        entries([("1", ab, np.array([0])), ("1", pd.DataFrame({"t": ["x"]}), np.array([0]))]),
    ]
    for buffered in others:
        assert segments_table(buffered, "m") is None


def test_a_failed_flush_of_micro_batches_keeps_them_and_the_short_way_goes_on(
    settings: Settings,
) -> None:
    """A flush of the short way's segments that cannot write puts them back; the requests that
    follow are still taken (the table held views of the old segments' arrays: appending to those
    would fail), and the next flush writes them all, in order."""
    log = TrafficWriter(settings, "m", "prod", flush_seconds=3600)

    def request(i: int) -> None:
        log.log_rows(request_ids=[f"r{i}"], rows=[1], latencies_ms=[1.0], version="1",
                     inputs=pd.DataFrame([[float(i), 1.0]], columns=["a", "b"]),
                     outputs=np.array([i]), layout="k")  # fmt: skip

    for i in range(20):
        request(i)
    log.folder.parent.mkdir(parents=True, exist_ok=True)
    log.folder.write_text("in the way")
    with pytest.raises(OSError) as failed:  # held, as the flush thread holds it to log it
        log.flush()
    for i in range(20, 40):
        request(i)
    del failed
    log.folder.unlink()
    assert log.flush() == 40
    log.close()
    logged = read_traffic(settings, "m", "prod")
    assert logged["a"].tolist() == [float(i) for i in range(40)]
    assert logged["prediction"].tolist() == list(range(40))
