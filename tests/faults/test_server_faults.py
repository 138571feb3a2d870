"""Faults of the server side: a dead promoter's alias lock, a hung tracking server, hostile input.

Real processes race for the alias lock of a SIGKILLed owner; a real socket that accepts and never
answers plays the hung tracking server; a real Jupyter server answers every request.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

import jupyter_mlops as mlops
from jupyter_mlops.diagnostics import check_mlflow
from tests.lab_server import running_server
from tests.registry_support import client, make_run

# --- racing promoters over a dead owner's alias lock ---------------------------------------------

RACERS = 4
ROUNDS = 8
LINE_TIMEOUT_S = 60.0

RACER = """
import json, sys
import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.errors import GateFailed
from jupyter_mlops.registry import gates
from jupyter_mlops.tracking.client import mlflow_client

mlflow_client(current_settings().tracking_uri)  # warm: mlflow imported, store open
real_lock = gates.alias_lock

def at_the_lock(*args, **kwargs):
    # Every racer has read the alias holder (its compare-and-set base); wait for the start.
    print("waiting", flush=True)
    sys.stdin.readline()
    return real_lock(*args, **kwargs)

gates.alias_lock = at_the_lock
print("ready", flush=True)
while True:
    alias = sys.stdin.readline().strip()
    if not alias:
        break
    try:
        result = mlops.promote(sys.argv[1], alias, "metrics.val_acc > 0.5")
    except GateFailed as failed:
        result = failed.result
    print(json.dumps({"version": result.version, "moved": result.moved}), flush=True)
"""

# Takes the alias lock in a forked child and SIGKILLs it there: the lock of a dead owner.
DEAD_OWNER = """
import os, signal, sys
from pathlib import Path
from jupyter_mlops.registry.locks import alias_lock

home = Path(sys.argv[1])
print("ready", flush=True)
while True:
    alias = sys.stdin.readline().strip()
    if not alias:
        break
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        with alias_lock(home, "race", alias, "dead-owner", timeout=5):
            os.write(write, b"held")
            signal.pause()
        os._exit(0)
    os.read(read, 4)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    os.close(read)
    os.close(write)
    print("dead", flush=True)
"""


class Worker:
    """A Python process fed lines on stdin; its stdout lines are read with a deadline."""

    def __init__(self, script: str, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.errors: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        self.errors.extend(self.proc.stderr)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self) -> str:
        try:
            line = self.lines.get(timeout=LINE_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(f"no answer in {LINE_TIMEOUT_S} s") from None
        if line is None:
            raise AssertionError("the process ended: " + "".join(self.errors)[-2000:])
        return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def registry_store(shared_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOPS_HOME", str(shared_home))
    monkeypatch.setenv("MLOPS_EXPERIMENT", "race")
    return shared_home


@pytest.fixture
def workers(registry_store: Path, tmp_path: Path) -> Iterator[list[Worker]]:
    run_id = make_run("race-run", val_acc=0.9)
    registry = client(registry_store)
    registry.create_registered_model("race")
    for _ in range(RACERS):  # versions of the run without a logged model: the gate reads the run
        registry.create_model_version(
            "race", source=(registry_store / "race").as_uri(), run_id=run_id
        )
    env = {**os.environ, "MLOPS_HOME": str(registry_store)}
    started = [Worker(RACER, [f"race/{v}"], tmp_path, env) for v in range(1, RACERS + 1)] + [
        Worker(DEAD_OWNER, [str(registry_store)], tmp_path, env)
    ]
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def test_racers_over_a_dead_owners_lock_promote_exactly_once_per_round(
    workers: list[Worker],
    registry_store: Path,
) -> None:
    *racers, owner = workers
    for worker in workers:
        assert worker.read() == "ready"
    lost, doubled = [], []
    for round_number in range(ROUNDS):
        alias = f"round{round_number}"
        owner.send(alias)
        assert owner.read() == "dead"
        lock = registry_store / "locks" / f"race@{alias}.lock"
        assert lock.exists()  # the dead owner's lock is still there
        for racer in racers:
            racer.send(alias)
        for racer in racers:  # all have read the holder (unset) and stand at the lock
            assert racer.read() == "waiting"
        for racer in racers:
            racer.send("go")
        outcomes = [json.loads(racer.read()) for racer in racers]
        winners = [o["version"] for o in outcomes if o["moved"]]
        holder = client(registry_store).get_registered_model("race").aliases.get(alias)
        if len(winners) != 1:
            doubled.append((round_number, winners))
        if holder is None or int(holder) not in winners[-1:]:
            lost.append((round_number, winners, holder))
    decisions: dict[str, list[str]] = {}
    for path in (registry_store / "reports").glob("gate-race-*.json"):
        record = json.loads(path.read_text())
        decisions.setdefault(record["alias"], []).append(record["decision"])
    promoted = {alias: kinds.count("promoted") for alias, kinds in decisions.items()}
    assert doubled == [] and lost == []
    assert promoted == {f"round{n}": 1 for n in range(ROUNDS)}
    assert all(sorted(kinds).count("rejected") == RACERS - 1 for kinds in decisions.values())


def test_a_lock_held_by_a_live_process_makes_a_waiter_give_up_naming_it(
    registry_store: Path,
) -> None:
    from jupyter_mlops.registry.locks import alias_lock

    with (
        alias_lock(registry_store, "held", "champion", "alice", timeout=1),
        pytest.raises(mlops.MLOpsError, match=rf"being promoted by alice \(pid {os.getpid()}"),
        alias_lock(registry_store, "held", "champion", "bob", timeout=0.2),
    ):
        pass
    with alias_lock(registry_store, "held", "champion", "bob", timeout=0.2):
        pass  # free again once its holder left


# --- a tracking server that accepts connections and never answers --------------------------------


@pytest.fixture
def hung_server() -> Iterator[str]:
    """A socket on 127.0.0.1 that accepts every connection and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


async def runs_of(jp_fetch: Any, folder: str) -> tuple[int, str]:
    try:
        response = await jp_fetch(
            "jupyter-mlops", "api", "runs", params={"path": folder}, request_timeout=60
        )
    except HTTPClientError as exc:
        body = exc.response.body if exc.response is not None else b'{"message": ""}'
        return exc.code, json.loads(body)["message"]
    return response.code, ""


async def test_a_hung_tracking_server_answers_504_and_holds_up_no_other_store(
    jp_fetch: Any,
    jp_root_dir: Path,
    hung_server: str,
    template_store: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    (jp_root_dir / "hung").mkdir()
    (jp_root_dir / "hung" / "pyproject.toml").write_text(
        f'[tool.jupyter-mlops]\ntracking_uri = "{hung_server}"\n'
    )
    (jp_root_dir / "healthy" / ".mlops").mkdir(parents=True)
    (jp_root_dir / "healthy" / ".mlops" / "mlflow.db").write_bytes(template_store.read_bytes())
    # More hung requests than a shared pool of the default size has threads.
    hung = [
        asyncio.ensure_future(runs_of(jp_fetch, "hung")) for _ in range((os.cpu_count() or 1) + 5)
    ]
    try:
        response = await jp_fetch(
            "jupyter-mlops", "api", "runs", params={"path": "healthy"}, request_timeout=20
        )
        assert response.code == 200
        answers = await asyncio.gather(*hung)
    finally:
        for request in hung:
            request.cancel()
    assert {code for code, _ in answers} == {504}
    assert all(f"the tracking server {hung_server} did not answer" in m for _, m in answers)


def test_doctor_fails_the_store_check_of_a_hung_server_in_seconds(
    hung_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    found: list[Any] = []
    worker = threading.Thread(target=lambda: found.append(check_mlflow(hung_server)), daemon=True)
    worker.start()
    worker.join(timeout=60)  # MLflow's own bounds (120 s x 7 retries) would take many minutes
    assert found, "the store check still waits for the hung server"
    assert found[0].level == "fail"
    assert f"{hung_server} did not answer" in found[0].detail


# --- MLflow is loaded by the first request, not by the server's start ----------------------------

SERVER = """
import gc, sys, threading
marker = sys.argv.pop(1)

def note(line):
    with open(marker, "a") as fh:
        fh.write(line + "\\n")

def watch(event, args):
    if event == "import" and args[0] == "mlflow":
        note("mlflow imported in " + threading.current_thread().name)

sys.addaudithook(watch)
gc.freeze = lambda: note("gc.freeze")
from jupyter_server.serverapp import main
sys.exit(main())
"""


def get_json(url: str) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_a_started_server_imports_mlflow_on_the_first_request_and_leaves_gc_alone(
    tmp_path: Path,
    template_store: Path,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    root, marker = tmp_path / "root", tmp_path / "imports.txt"
    (root / "project" / ".mlops").mkdir(parents=True)
    (root / "project" / ".mlops" / "mlflow.db").write_bytes(template_store.read_bytes())
    launch = ["-c", SERVER, str(marker)]
    with running_server("jupyter_server", [], root, tmp_path / "server.log", argv=launch) as lab:
        api, token = f"{lab.url}/jupyter-mlops/api", lab.token
        assert get_json(f"{api}/store?path=project&token={token}")[0] == 200
        assert not marker.exists(), marker.read_text()  # started and answered: no MLflow yet
        routes = ["runs", "models", "drift", "snapshots", "runs", "models"]
        with ThreadPoolExecutor(len(routes)) as pool:  # first requests, all at once
            answers = list(
                pool.map(lambda r: get_json(f"{api}/{r}?path=project&token={token}"), routes)
            )
        assert [code for code, _ in answers] == [200] * len(routes), answers
        lines = marker.read_text().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mlflow imported in jupyter-mlops-store")
