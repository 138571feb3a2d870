"""A real endpoint on 127.0.0.1 (one per module): MLflow's protocol and errors, the alias
switch under load, the inference log against the requests sent, status/bench/stop."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlops import records
from jupyter_mlops.config import Settings
from jupyter_mlops.serving.bench import load
from jupyter_mlops.serving.deployments import list_deployments
from jupyter_mlops.serving.launch import serve, serving_status, stop
from jupyter_mlops.serving.results import Deployment
from jupyter_mlops.serving.traffic import read_traffic
from tests.serving_support import (
    COLUMNS,
    TELLING_ROW,
    frame,
    get_json,
    move_alias,
    post,
    register_two_versions,
    split_body,
    store_settings,
    wait_until,
)

MODEL = "clf"
SENT: dict[str, int] = {}  # request id -> status of every request this module sent itself
ROWS = {"expected": 0}  # log rows those requests make: one per input row, one per refusal
LOADED = {"requests": 0}  # requests sent by load generators


@pytest.fixture(scope="module")
def settings(template_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = store_settings(template_store, tmp_path_factory.mktemp("serving"))
    register_two_versions(settings, MODEL)
    return settings


@pytest.fixture(scope="module")
def endpoint(settings: Settings) -> Iterator[Deployment]:
    deployment = serve(settings, f"{MODEL}@prod")
    try:
        yield deployment
    finally:
        if any(d.alive for d in list_deployments(settings)):
            stop(settings, deployment.name)


def send(url: str, body: str, content_type: str = "application/json", rows: int = 1) -> Any:
    status, headers, content = post(url, body, content_type)
    SENT[headers[records.HEADER_REQUEST_ID]] = status
    ROWS["expected"] += rows if status == 200 else 1
    return status, headers, content


def stock_answer(settings: Settings, version: str, body: str, content_type: str) -> Any:
    """What MLflow's own scoring app answers for the same model version and payload."""
    import mlflow.pyfunc
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    from jupyter_mlops.tracking.client import mlflow_client

    uri = mlflow_client(settings.tracking_uri).get_model_version_download_uri(MODEL, version)
    app = scoring_server.init(mlflow.pyfunc.load_model(uri))
    response = TestClient(app).post(
        "/invocations", content=body, headers={"Content-Type": content_type}
    )
    return response.status_code, response.content


PAYLOADS = {  # name: (body, content type, rows)
    "split": (split_body([TELLING_ROW, [0.9, 0.1]]), "application/json", 2),
    "records": (json.dumps({"dataframe_records": [{"a": 0.9, "b": 0.1}]}), "application/json", 1),
    "instances": (json.dumps({"instances": [{"a": 0.2, "b": 0.7}]}), "application/json", 1),
    "csv": ("a,b\n0.1,0.9\n0.8,0.3\n", "text/csv", 2),
    "csv-utf8": ("a,b\n0.4,0.5\n", "text/csv; charset=utf-8", 1),
}
BAD = {
    "not json": ("{nope", "application/json"),
    "no format key": (json.dumps({"rows": [[1, 2]]}), "application/json"),
    "missing column": (json.dumps({"dataframe_split": {"columns": ["a"], "data": [[1]]}}),
                       "application/json"),
    "text in a number": (split_body([["x", 1]]), "application/json"),  # type: ignore[list-item]
    "csv of nothing": ("", "text/csv"),
}  # fmt: skip


def test_mlflow_clients_get_what_mlflow_serving_answers(
    endpoint: Deployment, settings: Settings
) -> None:
    for name, (body, content_type, rows) in PAYLOADS.items():
        status, headers, content = send(endpoint.url, body, content_type, rows)
        assert (status, json.loads(content)) == (200, json.loads(
            stock_answer(settings, "1", body, content_type)[1]
        )), name  # fmt: skip
        assert headers[records.HEADER_MODEL_VERSION] == "1", name
    assert get_json(f"{endpoint.url}/version")["version"] == "1"
    assert send(endpoint.url, split_body([TELLING_ROW]))[2] == b'{"predictions": [0]}'


def test_a_bad_payload_is_a_400_with_mlflows_error_json_never_a_500(
    endpoint: Deployment, settings: Settings
) -> None:
    for name, (body, content_type) in BAD.items():
        status, headers, content = send(endpoint.url, body, content_type)
        error = json.loads(content)
        assert status == 400, (name, content)
        assert set(error) >= {"error_code", "message"}, name
        stock_status, stock_content = stock_answer(settings, "1", body, content_type)
        assert (
            stock_status == 400 and json.loads(stock_content)["error_code"] == error["error_code"]
        ), name
        assert headers[records.HEADER_MODEL_VERSION] == "1"


def test_concurrent_requests_scored_together_each_get_their_own_mlflow_answer(
    endpoint: Deployment, settings: Settings
) -> None:
    # Requests arriving together are stacked into one predict call when they can be (numbers
    # in split/records), the others (an int column beside floats, a bad row) go MLflow's way.
    burst = {
        "split a": (split_body([[0.1, 0.9], [0.8, 0.3]]), 2),
        "split b": (split_body([[0.7, 0.2]]), 1),
        "records": (json.dumps({"dataframe_records": [{"a": 0.3, "b": 0.6}]}), 1),
        "ints": (split_body([[1, 0]]), 1),
        "text": (split_body([["x", 1]]), 1),  # type: ignore[list-item]
    }
    expected = {k: stock_answer(settings, "1", body, "application/json") for k, (body, _) in
                burst.items()}  # fmt: skip
    names = [name for name in burst for _ in range(6)]
    answers: dict[int, Any] = {}
    start = threading.Barrier(len(names))

    def client(i: int) -> None:
        start.wait(timeout=30)
        answers[i] = post(endpoint.url, burst[names[i]][0])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for i, name in enumerate(names):
        status, headers, content = answers[i]
        stock_status, stock_content = expected[name]
        assert status == stock_status, name
        if status == 200:
            assert json.loads(content) == json.loads(stock_content), name
        else:
            assert json.loads(content)["error_code"] == json.loads(stock_content)["error_code"]
        SENT[headers[records.HEADER_REQUEST_ID]] = status
        ROWS["expected"] += burst[name][1] if status == 200 else 1


def test_only_plain_number_frames_take_the_batched_way() -> None:
    from jupyter_mlops.serving.server import frame_rows, rows_key

    split = split_body([[0.1, 2]]).encode()
    assert frame_rows(split, "application/json; charset=UTF-8") == (COLUMNS, [[0.1, 2]])
    records_ = json.dumps({"dataframe_records": [{"a": 1, "b": 2.5}]}).encode()
    assert frame_rows(records_, "application/json") == (COLUMNS, [[1, 2.5]])
    assert rows_key(COLUMNS, [[1, 2.5]]) != rows_key(COLUMNS, [[1.0, 2.5]])  # int vs float
    with_params = json.dumps({"dataframe_split": json.loads(split)["dataframe_split"],
                              "params": {"k": 1}}).encode()  # fmt: skip
    refused = [
        (split, "text/csv"),
        (split, "application/json; charset=latin-1"),
        (with_params, "application/json"),
        (split_body([[True, 1]]).encode(), "application/json"),
        (split_body([["x", 1]]).encode(), "application/json"),  # type: ignore[list-item]
        (split_body([]).encode(), "application/json"),
        (json.dumps({"dataframe_records": [{"a": 1, "b": 2}, {"b": 2, "a": 1}]}).encode(),
         "application/json"),
        (json.dumps({"instances": [{"a": 1, "b": 2}]}).encode(), "application/json"),
        (b"{nope", "application/json"),
    ]  # fmt: skip
    assert [frame_rows(body, kind) for body, kind in refused] == [None] * len(refused)


def test_an_alias_switch_under_load_fails_no_request_and_shows_within_5_s(
    endpoint: Deployment, settings: Settings
) -> None:
    result: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: result.setdefault(
            "load", load(endpoint.url, split_body([TELLING_ROW]).encode(), clients=8, seconds=4)
        )
    )
    worker.start()
    wait_until(lambda: endpoint_requests(settings) > 20, 30, "load reached the endpoint")
    move_alias(settings, MODEL, "prod", 2)
    took = wait_until(
        lambda: get_json(f"{endpoint.url}/version")["version"] == "2", 5, "/version says 2"
    )
    worker.join(timeout=60)
    bench = result["load"]
    LOADED["requests"] += bench.requests
    assert bench.errors == 0 and bench.statuses == {200: bench.requests}
    assert set(bench.versions) == {"1", "2"} and sum(bench.versions.values()) == bench.requests
    assert took < 5
    _, headers, content = send(endpoint.url, split_body([TELLING_ROW]))
    assert (headers[records.HEADER_MODEL_VERSION], content) == ("2", b'{"predictions": [1]}')
    move_alias(settings, MODEL, "prod", 1)
    wait_until(lambda: get_json(f"{endpoint.url}/version")["version"] == "1", 5, "back to 1")


def endpoint_requests(settings: Settings) -> int:
    return sum(d.requests for d in list_deployments(settings))


def test_magics_list_bench_and_find_the_endpoint(
    endpoint: Deployment, ip: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(settings.home))
    status = ip.run_line_magic("serve", "status")
    assert [d.name for d in status.deployments] == [f"{MODEL}@prod"]
    row = status.deployments[0]
    assert row.alive and row.version == "1" and row.url == endpoint.url
    wait_until(lambda: serving_status(settings).deployments[0].requests >= len(SENT), 5, "stats")
    bench = ip.run_line_magic("serve", "bench clf --clients 2 --seconds 1")
    LOADED["requests"] += bench.requests
    assert bench.requests > 0 and bench.errors == 0 and bench.p99_ms is not None
    assert "req/s" in repr(bench)
    html = ip.display_formatter.format(status)[0]["text/html"]
    assert endpoint.url in html
    card = ip.display_formatter.format(endpoint)[0]
    assert endpoint.url in card["text/html"] and f"pid {endpoint.pid}" in card["text/plain"]


def test_stop_flushes_the_log_one_row_per_request_with_its_id_and_status(
    endpoint: Deployment, settings: Settings
) -> None:
    sample = frame(3, seed=4).round(4)
    body = json.dumps({"dataframe_split": json.loads(sample.to_json(orient="split", index=False))})
    status, headers, _ = send(endpoint.url, body, rows=3)
    assert status == 200
    assert stop(settings, endpoint.name) == [endpoint.name]
    assert list_deployments(settings) == []
    log = read_traffic(settings, MODEL, "prod")
    # Every request this module sent itself is in the log under its id, with its status, and
    # every request of the load generators (single rows) too.
    logged = log.groupby(records.TRAFFIC_REQUEST_ID)[records.TRAFFIC_STATUS].first().to_dict()
    assert {k: logged.get(k) for k in SENT} == SENT
    assert len(log) == ROWS["expected"] + LOADED["requests"]
    assert list(log.columns[:6]) == list(records.TRAFFIC_FIXED_COLUMNS)
    assert [c for c in log.columns if c in COLUMNS] == COLUMNS
    assert str(log[records.TRAFFIC_TIMESTAMP].dtype).startswith("datetime64")
    # Under load, requests were scored (and logged) together: a micro-batch shares a stamp.
    loaded = log[~log[records.TRAFFIC_REQUEST_ID].isin(list(SENT))]
    assert loaded[records.TRAFFIC_TIMESTAMP].nunique() < len(loaded) == LOADED["requests"]
    last = log[log[records.TRAFFIC_REQUEST_ID] == headers[records.HEADER_REQUEST_ID]]
    assert last[COLUMNS].to_numpy().tolist() == sample.to_numpy().tolist()
    assert last["prediction"].notna().all()


def test_an_endpoint_stopped_in_process_ends_its_scoring_thread_and_keeps_its_log(
    settings: Settings, tmp_path: Path
) -> None:
    """The app's shutdown (what uvicorn runs on SIGTERM) ends the thread MLflow's own parsing
    runs on, and the request it answered is in the log: nothing left running, nothing lost."""
    import gc

    from fastapi.testclient import TestClient

    from jupyter_mlops.serving.server import Endpoint, Options, build_app

    move_alias(settings, MODEL, "inproc", 1)  # a log of its own, apart from the module's
    options = Options(
        folder=str(tmp_path), home=str(settings.home), tracking_uri=settings.tracking_uri,
        name="inproc", model=MODEL, alias="inproc",
    )  # fmt: skip

    def scoring() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("mlops-score")]

    before = set(scoring())
    try:
        with TestClient(build_app(Endpoint(options))) as client:
            response = client.post(  # CSV: parsed by MLflow, on the scoring thread
                "/invocations", content="a,b\n0.1,0.9\n", headers={"Content-Type": "text/csv"}
            )
            assert response.status_code == 200
            started = [t for t in scoring() if t not in before]
            assert len(started) == 1
        started[0].join(timeout=10)
        assert not started[0].is_alive()
    finally:
        gc.unfreeze()  # the endpoint's start froze this test process's objects
    log = read_traffic(settings, MODEL, "inproc")
    assert len(log) == 1 and log[records.TRAFFIC_STATUS].tolist() == [200]
