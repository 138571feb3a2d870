"""Real engines on 127.0.0.1 for the tests: an MLflow tracking server and an S3 API (moto).

Each runs from a virtual environment of its own, made by ``.ci/run``: ``.venv-mlflow`` holds the
full ``mlflow`` package (our own environment has only mlflow-skinny, which cannot serve), and
``.venv-moto`` holds ``moto[server]`` (its pins would fight ours). A missing environment fails the
test with what to run; nothing is skipped. Every engine starts in a session of its own, is waited
for with a bounded poll of its health URL, and is stopped with its whole process group.

Loaded as a pytest plugin by tests/conftest.py: the session fixtures ``mlflow_server`` and
``s3_server`` start each engine once per test session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.lab_server import free_port

REPO = Path(__file__).resolve().parent.parent
MLFLOW_VENV = REPO / ".venv-mlflow"
MOTO_VENV = REPO / ".venv-moto"
START_TIMEOUT_S = 90.0  # the MLflow server imports Flask, FastAPI and SQLAlchemy on a busy machine
STOP_TIMEOUT_S = 15.0
S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def executable(venv: Path, name: str) -> Path:
    path = venv / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run .ci/run, which creates {venv.name}", pytrace=False)
    return path


@dataclass
class Engine:
    """A server process (and its children) in a process group of its own."""

    name: str
    argv: list[str]
    url: str
    ready_path: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Engine:
        return self.launch().wait_ready()

    def launch(self) -> Engine:
        """Start the process and return at once (see :meth:`wait_ready`)."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        return self

    def wait_ready(self) -> Engine:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.answers():
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited at start:\n{self.log_tail()}", pytrace=False)
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"{self.name} did not answer in {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}",
                    pytrace=False,
                )
            time.sleep(0.2)
        return self

    def answers(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=timeout) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the whole group (the MLflow CLI runs uvicorn as a child)."""
        assert self.process is not None
        os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL, as a crashed or OOM-killed server; returns once the group is gone."""
        self.signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            self.signal(signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap()

    def _reap(self) -> None:
        assert self.process is not None
        self.process.wait(STOP_TIMEOUT_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:  # children of the group (uvicorn) end too
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def mlflow_engine(folder: Path, port: int | None = None) -> Engine:
    """``mlflow server`` on SQLite, artifacts proxied (``--serve-artifacts``) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = [
        str(executable(MLFLOW_VENV, "mlflow")),
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # The job runner starts seven huey consumers (over 1 GB); no test uses MLflow's jobs.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    url = f"http://127.0.0.1:{port}"
    return Engine("mlflow server", argv, url, "/health", folder / "server.log", env)


def moto_engine(folder: Path) -> Engine:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [str(executable(MOTO_VENV, "moto_server")), "-H", "127.0.0.1", "-p", str(port)]
    url = f"http://127.0.0.1:{port}"
    return Engine("moto S3 server", argv, url, "/moto-api/", folder / "moto.log")


def held(engine: Engine) -> Iterator[Engine]:
    """A fixture's body: the started (or launched) ``engine``, stopped afterwards whatever
    happened."""
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One real MLflow tracking server for the session; tests use names of their own on it."""
    yield from held(mlflow_engine(tmp_path_factory.mktemp("mlflow-server")).start())


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    yield from held(moto_engine(tmp_path_factory.mktemp("moto")).start())


@pytest.fixture
def s3_bucket(s3_server: Engine, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket on the S3 server, reached as users reach MinIO: endpoint and keys in env."""
    import fsspec

    for key, value in {**S3_KEYS, "AWS_ENDPOINT_URL": s3_server.url}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"mlops-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(bucket)
    return bucket
