"""The endpoint process: MLflow's scoring protocol, following an alias, logging its traffic.

Run by :mod:`.launch` as ``python -m jupyter_mlops.serving.server FOLDER`` with its options in
the ``MLOPS_SERVE_OPTIONS`` environment variable (JSON of :class:`Options`), so uvicorn's worker
processes (``--workers N``) build the same app from the same options.

Requests are parsed, predicted and answered by ``mlflow.pyfunc.scoring_server.invocations``
itself (JSON ``dataframe_split``/``dataframe_records``/``instances``/``inputs``, CSV, Parquet;
MLflow's error JSON on a bad payload), handed a per-request proxy of the model version pinned at
arrival: the proxy runs the contract check, splits feature computation from prediction when the
model offers it, and keeps inputs and outputs for the inference log.
"""

import asyncio
import collections
import concurrent.futures
import contextlib
import gc
import itertools
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import records
from .deployments import LATENCY_WINDOW, DeploymentRecord, WorkerStats, save_record, write_stats
from .follow import Served, alias_version, load_served
from .traffic import TrafficWriter

OPTIONS_ENV = "MLOPS_SERVE_OPTIONS"
POLL_SECONDS = 1.0
GRACEFUL_SECONDS = 5
HEALTHCHECK_SECONDS = 60
log = logging.getLogger("jupyter_mlops.serving")


@dataclass(frozen=True)
class Options:
    folder: str
    home: str
    tracking_uri: str
    name: str
    model: str
    alias: str
    host: str = "127.0.0.1"
    port: int = 0
    workers: int = 1
    detached: bool = False
    log_sample: float = 1.0
    enforce_contract: str | None = None
    parent_pid: int | None = None  # die with this process (None when detached)
    poll_seconds: float = POLL_SECONDS


class ContractViolation(Exception):
    """A request broke the endpoint's data contract (answered 422)."""

    def __init__(self, violation: str) -> None:
        super().__init__(violation)  # the checker's message names the contract and the rule


class ModelCall:
    """The model as ``scoring_server.invocations`` sees it for one request."""

    def __init__(self, served: Served, check: Callable[[Any], str | None] | None):
        self.served = served
        self.metadata = served.model.metadata
        self.check = check
        self.inputs: Any = None
        self.outputs: Any = None
        self.features: Any = None
        self.violation: ContractViolation | None = None

    def predict(self, data: Any, params: Any = None) -> Any:
        self.inputs = data
        if self.check is not None:
            message = self.check(data)
            if message:
                self.violation = ContractViolation(message)
                raise self.violation
        self.outputs, self.features = self.served.predict(data, params)
        return self.outputs


BATCH_MAX_ROWS = 64  # rows scored in one predict call at most
JSON_MIME = "application/json"
_NUMBERS = (int, float)


@dataclass
class Pending:
    """A request waiting for the next micro-batch."""

    key: tuple[Any, ...]  # requests of one key stack into one frame of the same dtypes
    columns: list[str]
    rows: list[list[Any]]
    body: bytes
    content_type: str
    started: float
    request_id: str
    future: asyncio.Future[tuple[int, bytes, str, str]]


def _json_loads() -> Callable[[bytes], Any]:
    try:
        import orjson
    except ImportError:
        return json.loads
    loads: Callable[[bytes], Any] = orjson.loads
    return loads


_loads = _json_loads()


def plain_json(content_type: str) -> bool:
    """``application/json`` with no parameter but ``charset=utf-8`` (what MLflow accepts)."""
    mime, *parameters = (part.strip() for part in content_type.split(";"))
    if mime != JSON_MIME:
        return False
    if not parameters:
        return True
    key, _, value = parameters[0].partition("=")
    return len(parameters) == 1 and key == "charset" and value.lower() == "utf-8"


def frame_rows(body: bytes, content_type: str) -> tuple[list[str], list[list[Any]]] | None:
    """(columns, rows) of a plain-number ``dataframe_split``/``dataframe_records`` JSON body;
    None for anything else (that goes MLflow's own way, errors included)."""
    if not plain_json(content_type):
        return None
    try:
        payload = _loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or len(payload) != 1:
        return None
    columns: list[str]
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        if not isinstance(split, dict) or split.keys() != {"columns", "data"}:
            return None
        columns, rows = split["columns"], split["data"]
        if not isinstance(columns, list) or not isinstance(rows, list) or not rows:
            return None
        if any(type(c) is not str for c in columns) or len(set(columns)) != len(columns):
            return None
        if any(type(row) is not list or len(row) != len(columns) for row in rows):
            return None
    elif "dataframe_records" in payload:
        records_ = payload["dataframe_records"]
        if not isinstance(records_, list) or not records_ or type(records_[0]) is not dict:
            return None
        columns = list(records_[0])
        if any(type(r) is not dict or list(r) != columns for r in records_):
            return None
        rows = [list(r.values()) for r in records_]
    else:
        return None
    if not columns or any(type(v) not in _NUMBERS for row in rows for v in row):
        return None
    return columns, rows


def rows_key(columns: list[str], rows: list[list[Any]]) -> tuple[Any, ...]:
    """Columns and the dtype pandas infers for each (float when any value is): requests of one
    key make, stacked, the frame each would have made alone."""
    kinds = tuple(any(type(row[i]) is float for row in rows) for i in range(len(columns)))
    return (tuple(columns), kinds)


def all_double(schema: Any, columns: tuple[str, ...]) -> bool:
    """Does the signature cast every one of these columns to double (MLflow's cast of a frame
    then changes nothing a float64 array of the rows would not have)?"""
    from mlflow.types.schema import DataType

    if schema is None or not schema.has_input_names():
        return False
    types = dict(zip(schema.input_names(), schema.input_types(), strict=True))
    return all(types.get(column) == DataType.double for column in columns)


def stacked_frame(served: Served, columns: list[str], rows: list[list[Any]], double: bool) -> Any:
    """The frame MLflow would make of these rows and cast to the signature. ``double`` (see
    :func:`all_double`): one float64 array, as one pandas block; the cast column by column
    would give the same values split into a block each, costlier to predict from and to log."""
    import numpy as np
    import pandas as pd
    from mlflow.utils.proto_json_utils import cast_df_types_according_to_schema

    if double:
        return pd.DataFrame(np.array(rows, dtype=np.float64), columns=columns)
    frame = pd.DataFrame(data=rows, columns=columns)
    return cast_df_types_according_to_schema(frame, served.input_schema)


def split_outputs(outputs: Any, counts: list[int]) -> list[Any] | None:
    """The model's outputs for a stacked frame, cut back into each request's share; None when
    they are not one per row (such a model is then asked request by request)."""
    import numpy as np
    import pandas as pd

    if len(counts) == 1:
        return [outputs]
    total = sum(counts)
    if isinstance(outputs, (pd.DataFrame, pd.Series)):
        if len(outputs) != total:
            return None
        cut = outputs.iloc
    elif isinstance(outputs, (np.ndarray, list)):
        if (isinstance(outputs, np.ndarray) and outputs.ndim == 0) or len(outputs) != total:
            return None
        cut = outputs
    else:
        return None
    parts, begin = [], 0
    for count in counts:
        parts.append(cut[begin : begin + count])
        begin += count
    return parts


class Endpoint:
    """One serving process's state: the version answering, its counters, its log writer."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.folder = Path(options.folder)
        version = alias_version(options.tracking_uri, options.model, options.alias)
        if version is None:
            raise SystemExit(f"model {options.model!r} has no alias {options.alias!r}")
        self.current = load_served(options.tracking_uri, options.model, version)
        self.check = self._contract_checker()
        self.writer = TrafficWriter(
            Path(options.home), options.model, options.alias, sample=options.log_sample
        )
        self.stats = WorkerStats(pid=os.getpid(), version=self.current.version)
        self.latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)
        self._stop = threading.Event()
        self._follower = threading.Thread(target=self._follow, name="mlops-follow", daemon=True)
        # Micro-batches are scored on the event loop, one after the other: requests arriving
        # while one is scored wait for the next (no timer: a lone request is scored at once).
        # Requests MLflow parses itself are answered on one scoring thread.
        self._scorer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mlops-score")
        self._pending: collections.deque[Pending] = collections.deque()
        self._batching: asyncio.Task[None] | None = None
        # Request ids: a random prefix per process and a counter, 32 hex digits like a uuid4's
        # (which costs a system call for its randomness; this costs a string format).
        self._id_prefix = uuid.uuid4().hex[:20]
        self._ids = itertools.count()
        self._doubles: dict[tuple[str, tuple[Any, ...]], bool] = {}

    def request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):012x}"

    def _contract_checker(self) -> Callable[[Any], str | None] | None:
        if not self.options.enforce_contract:
            return None
        from ..config import resolve_settings
        from ..contracts.service import request_checker

        settings = resolve_settings(
            Path(self.options.home).parent,
            flags={"home": self.options.home, "tracking_uri": self.options.tracking_uri},
            env={},
        )
        checker: Callable[[Any], str | None] = request_checker(
            settings, self.options.enforce_contract
        )
        return checker

    def start(self) -> None:
        # MLflow, pandas and the model are hundreds of thousands of long-lived objects: out of
        # the collector's sight, its full passes under load stop scanning them again and again.
        gc.collect()
        gc.freeze()
        with contextlib.suppress(OSError):
            self.write_stats()  # %serve status shows the version before the first request
        self._follower.start()

    def stop(self) -> None:
        """Stop following, flush the inference log and the last stats (nothing logged lost)."""
        log.info("stopping")
        self._stop.set()
        if self._follower.is_alive():
            self._follower.join(timeout=10)
        # The app's graceful shutdown has answered every request; end the scoring thread
        # before the log closes, so that nothing it still held is recorded after the close.
        self._scorer.shutdown(wait=True)
        self.writer.close()
        self.write_stats()
        log.info("stopped")

    def write_stats(self) -> None:
        self.stats.version = self.current.version
        self.stats.dropped = self.writer.dropped
        self.stats.latencies_ms = list(self.latencies)
        self.stats.updated = time.time()
        write_stats(self.folder, self.stats)

    def _follow(self) -> None:
        """Poll the alias; load a new version beside the old one and swap the reference."""
        written = -1
        while not self._stop.wait(self.options.poll_seconds):
            try:
                version = alias_version(
                    self.options.tracking_uri, self.options.model, self.options.alias
                )
                if version is not None and version != self.current.version:
                    loaded = load_served(self.options.tracking_uri, self.options.model, version)
                    self.current = loaded  # one reference store: requests after this use it
                    log.info("now serving version %s", version)
            except Exception:  # the registry being busy must not stop the endpoint
                log.exception("following %s@%s failed", self.options.model, self.options.alias)
            if self.stats.requests != written or self.stats.version != self.current.version:
                written = self.stats.requests
                with contextlib.suppress(OSError):
                    self.write_stats()

    def answer(self, body: bytes, content_type: str | None) -> tuple[int, str, str, Any]:
        """(status, content, media type, call) for one /invocations request (runs in a thread)."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
        from mlflow.pyfunc import scoring_server

        call = ModelCall(self.current, self.check)
        try:
            result = scoring_server.invocations(
                body, content_type or "", call, call.served.input_schema
            )
        except MlflowException as exc:
            if call.violation is not None:
                error = MlflowException(str(call.violation), error_code=INVALID_PARAMETER_VALUE)
                return 422, error.serialize_as_json(), "application/json", call
            return exc.get_http_status_code(), exc.serialize_as_json(), "application/json", call
        return result.status, result.response, result.mimetype, call

    async def invoke(self, body: bytes, content_type: str) -> tuple[int, bytes, str, str, str]:
        """(status, content, media type, version, request id) for one /invocations request."""
        started = time.perf_counter()
        request_id = self.request_id()
        parsed = None
        if self.current.row_wise and self.check is None:
            parsed = frame_rows(body, content_type)
        if parsed is None:
            return (*await self._one(body, content_type, started, request_id), request_id)
        loop = asyncio.get_running_loop()
        columns, rows = parsed
        future: asyncio.Future[tuple[int, bytes, str, str]] = loop.create_future()
        key = rows_key(columns, rows)
        self._pending.append(
            Pending(key, columns, rows, body, content_type, started, request_id, future)
        )
        if self._batching is None or self._batching.done():
            self._batching = loop.create_task(self._batches())
        return (*await future, request_id)

    async def _one(
        self, body: bytes, content_type: str, started: float, request_id: str
    ) -> tuple[int, bytes, str, str]:
        """MLflow's own way for one request (any format, errors included)."""
        status, content, media, call = await asyncio.get_running_loop().run_in_executor(
            self._scorer, self.answer, body, content_type
        )
        latency_ms = (time.perf_counter() - started) * 1000.0
        self.record(call, status, latency_ms, request_id)
        data = content.encode() if isinstance(content, str) else content
        return status, data, media, call.served.version

    async def _batches(self) -> None:
        """Score what is pending, a micro-batch of one key at a time, until nothing is."""
        while True:
            await asyncio.sleep(0)  # requests read meanwhile join the pending ones
            if not self._pending:
                return
            batch = self._take()
            served = self.current
            try:  # on the loop: a stacked row-wise predict is short, a thread hop is not
                scored = self._score(served, batch, self._double(served, batch[0].key))
            except Exception:  # never leave a request unanswered
                log.exception("scoring a micro-batch failed")
                scored = None
            if scored is None:  # a request the stacked frame could not serve: one by one
                for pending in batch:
                    answer = await self._one(
                        pending.body, pending.content_type, pending.started, pending.request_id
                    )
                    if not pending.future.done():
                        pending.future.set_result(answer)
                continue
            frame, outputs, answers = scored
            now = time.perf_counter()
            latencies = [(now - p.started) * 1000.0 for p in batch]
            self.stats.requests += len(batch)
            self.latencies.extend(latencies)
            self._log_batch(served.version, batch, latencies, frame, outputs)
            for pending, content in zip(batch, answers, strict=True):
                if not pending.future.done():
                    pending.future.set_result((200, content, JSON_MIME, served.version))

    def _take(self) -> list[Pending]:
        """The oldest pending request and those of its key after it, up to BATCH_MAX_ROWS."""
        first = self._pending.popleft()
        batch, rows, others = [first], len(first.rows), []
        while self._pending and rows < BATCH_MAX_ROWS:
            pending = self._pending.popleft()
            if pending.key == first.key and rows + len(pending.rows) <= BATCH_MAX_ROWS:
                batch.append(pending)
                rows += len(pending.rows)
            else:
                others.append(pending)
        self._pending.extendleft(reversed(others))
        return batch

    def _double(self, served: Served, key: tuple[Any, ...]) -> bool:
        """:func:`all_double` of a version's signature and a key's columns, asked once each."""
        known = self._doubles.get((served.version, key))
        if known is None:
            if len(self._doubles) >= 64:  # keys a client can vary: keep it small
                self._doubles.clear()
            known = self._doubles[served.version, key] = all_double(served.input_schema, key[0])
        return known

    @staticmethod
    def _score(
        served: Served, batch: list[Pending], double: bool
    ) -> tuple[Any, Any, list[bytes]] | None:
        """(frame, outputs, each request's answer) of one stacked predict call (on the event
        loop); None when the frame fails or the outputs cannot be cut per request."""
        import io

        from mlflow.pyfunc.scoring_server import predictions_to_json

        rows = [row for pending in batch for row in pending.rows]
        try:
            frame = stacked_frame(served, batch[0].columns, rows, double)
            outputs = served.model.predict(frame)
        except Exception:  # a request breaking the schema: MLflow's own answer for each
            return None
        parts = split_outputs(outputs, [len(p.rows) for p in batch])
        if parts is None:
            return None
        answers = []
        for part in parts:
            text = io.StringIO()
            predictions_to_json(part, text)
            answers.append(text.getvalue().encode())
        return frame, outputs, answers

    def _log_batch(
        self, version: str, batch: list[Pending], latencies: list[float], frame: Any, outputs: Any
    ) -> None:
        if self.writer.sample > 0.0:
            self.writer.log_rows(
                request_ids=[p.request_id for p in batch],
                rows=[len(p.rows) for p in batch],
                latencies_ms=latencies,
                version=version,
                inputs=frame,
                outputs=outputs,
                layout=(version, batch[0].key),  # one frame layout per version and key
            )

    def record(self, call: ModelCall | None, status: int, latency_ms: float, request_id: str):
        self.stats.requests += 1
        if status >= 400:
            self.stats.errors += 1
        self.latencies.append(latency_ms)
        if self.writer.wants():
            self.writer.log(
                inputs=call.inputs if call else None,
                outputs=call.outputs if call and status < 400 else None,
                features=call.features if call and status < 400 else None,
                version=call.served.version if call else self.current.version,
                latency_ms=latency_ms,
                status=status,
                request_id=request_id,
            )


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


def build_app(endpoint: Endpoint) -> Any:
    """MLflow's routes (``/ping``, ``/health``, ``/version`` on FastAPI; ``POST /invocations``
    as raw ASGI in front of it); every response names the version that answered."""
    from fastapi import FastAPI
    from fastapi.responses import Response
    from mlflow.version import VERSION

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        endpoint.start()
        try:
            yield
        finally:
            endpoint.stop()

    app = FastAPI(lifespan=lifespan)

    def version_header() -> dict[str, str]:
        return {records.HEADER_MODEL_VERSION: endpoint.current.version}

    async def ping() -> Response:
        return Response(content="\n", media_type="application/json", headers=version_header())

    app.get("/ping")(ping)
    app.get("/health")(ping)

    @app.get("/version")
    async def version() -> Response:
        payload = {
            "model": endpoint.options.model,
            "alias": endpoint.options.alias,
            "version": endpoint.current.version,
            "mlflow": VERSION,
        }
        return Response(
            content=json.dumps(payload), media_type="application/json", headers=version_header()
        )

    version_name = records.HEADER_MODEL_VERSION.lower().encode()
    request_name = records.HEADER_REQUEST_ID.lower().encode()

    async def invocations(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """POST /invocations as raw ASGI: no routing, no request object, no thread per call."""
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        status, content, media, version, request_id = await endpoint.invoke(
            b"".join(chunks), _header(scope, b"content-type")
        )
        if media.startswith("text/") and "charset" not in media:
            media += "; charset=utf-8"  # as Starlette's Response says it
        headers = [
            (b"content-length", str(len(content)).encode()),
            (b"content-type", media.encode("latin-1")),
            (version_name, version.encode()),
            (request_name, request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/invocations"
            and scope["method"] == "POST"
        ):
            await invocations(scope, receive, send)
            return
        await app(scope, receive, send)

    return asgi


def read_options() -> Options:
    return Options(**json.loads(os.environ[OPTIONS_ENV]))


def create_app() -> Any:
    """uvicorn's app factory (each worker process builds its own endpoint)."""
    options = read_options()
    if options.workers > 1:  # a worker: go with the supervisor
        from ..distributed.procs import die_with_parent

        die_with_parent(signal.SIGTERM)
    return build_app(Endpoint(options))


def _watch_parent(parent: int, server: Any) -> None:
    """Shut down when the kernel is gone (PDEATHSIG covers it; this covers the race before)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    server.should_exit = True


def main(argv: list[str]) -> int:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    options = read_options()
    if options.parent_pid is not None:
        from ..distributed.procs import die_with_parent

        die_with_parent(signal.SIGTERM)
        if os.getppid() != options.parent_pid:  # the kernel died before prctl took effect
            return 1
    multi = options.workers > 1
    config = uvicorn.Config(
        "jupyter_mlops.serving.server:create_app" if multi else create_app(),
        factory=multi,
        host=options.host,
        port=options.port,
        workers=options.workers,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        # A worker loading MLflow and the model on a busy machine can miss uvicorn's 5 s health
        # ping; the supervisor would kill and respawn it again and again.
        timeout_worker_healthcheck=HEALTHCHECK_SECONDS,
    )
    sock = config.bind_socket()
    # Connections accepted from a socket handed to the loop do not get TCP_NODELAY (uvicorn's
    # own binding does): without it Nagle and delayed ACKs add ~40 ms to every answer.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = sock.getsockname()[1]
    save_record(
        Path(options.home),
        DeploymentRecord(
            name=options.name,
            model=options.model,
            alias=options.alias,
            host=options.host,
            port=int(port),
            pid=os.getpid(),
            detached=options.detached,
            started=time.time(),
            workers=options.workers,
            log_sample=options.log_sample,
            enforce_contract=options.enforce_contract,
            owner_pid=options.parent_pid,
        ),
    )
    if multi:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
        return 0
    server = uvicorn.Server(config)
    if options.parent_pid is not None:
        threading.Thread(
            target=_watch_parent, args=(options.parent_pid, server), daemon=True
        ).start()
    server.run(sockets=[sock])
    return 0


def options_env(options: Options) -> dict[str, str]:
    return {OPTIONS_ENV: json.dumps(asdict(options))}


if __name__ == "__main__":
    code = 0
    with contextlib.suppress(KeyboardInterrupt):
        code = main(sys.argv[1:])
    # The log and stats are flushed by the app's shutdown; MLflow's exit hooks would only add
    # seconds to every %serve stop.
    logging.shutdown()
    sys.stdout.flush()
    os._exit(code)
