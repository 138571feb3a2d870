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
import contextlib
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
        with contextlib.suppress(OSError):
            self.write_stats()  # %serve status shows the version before the first request
        self._follower.start()

    def stop(self) -> None:
        """Stop following, flush the inference log and the last stats (nothing logged lost)."""
        log.info("stopping")
        self._stop.set()
        if self._follower.is_alive():
            self._follower.join(timeout=10)
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


def build_app(endpoint: Endpoint) -> Any:
    """The FastAPI app: MLflow's routes (``/ping``, ``/health``, ``/version``,
    ``/invocations``); every response names the version that answered."""
    from fastapi import FastAPI, Request
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

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        body = await request.body()
        status, content, media, call = await asyncio.to_thread(
            endpoint.answer, body, request.headers.get("content-type")
        )
        latency_ms = (time.perf_counter() - started) * 1000.0
        endpoint.record(call, status, latency_ms, request_id)
        headers = {
            records.HEADER_MODEL_VERSION: call.served.version,
            records.HEADER_REQUEST_ID: request_id,
        }
        return Response(content=content, status_code=status, media_type=media, headers=headers)

    return app


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
