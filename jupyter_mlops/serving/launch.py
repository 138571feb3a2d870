"""Starting and stopping endpoints: a child process per endpoint, never the kernel itself.

The endpoint leads its own process group (a Jupyter interrupt does not reach it) and, unless
detached, asks the OS for SIGTERM when the kernel dies (``PR_SET_PDEATHSIG``, as
``%%distributed`` does), so it flushes its inference log and exits: no orphan survives the
kernel. A detached endpoint is found again through its record by any kernel of the store.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .. import records
from ..config import Settings
from ..errors import MLOpsError, MLOpsUsageError
from .deployments import (
    deployment_folder,
    find_record,
    load_record,
    record_alive,
)
from .follow import alias_version
from .results import Deployment, ServingStatus
from .server import Options, options_env

READY_SECONDS = 120.0
_children: dict[int, subprocess.Popen[bytes]] = {}  # endpoints this process started: reaped


def parse_ref(ref: str) -> tuple[str, str]:
    """``NAME@ALIAS`` -> (name, alias); an endpoint always follows an alias."""
    from ..registry.models import split_ref

    name, _, alias = split_ref(ref)
    if alias is None:
        raise MLOpsUsageError(
            f"{ref!r}: an endpoint follows an alias; write NAME@ALIAS "
            "(set one with %promote NAME/VERSION --alias ALIAS)"
        )
    return name, alias


def check_host(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise MLOpsUsageError(
                f"--host {host!r} is not an IP address; use 127.0.0.1 (this machine only) "
                "or 0.0.0.0 (every interface)"
            ) from None
    return host


def serve(
    settings: Settings,
    ref: str,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    workers: int = 1,
    detach: bool = False,
    log_sample: float = 1.0,
    enforce_contract: str | None = None,
    ready_seconds: float = READY_SECONDS,
) -> Deployment:
    """Start an endpoint for ``NAME@ALIAS`` and wait until it answers ``/ping``."""
    from ..registry.models import resolve_version
    from ..tracking.client import mlflow_client

    model, alias = parse_ref(ref)
    check_host(host)
    if not 0 <= port <= 65535:
        raise MLOpsUsageError(f"--port {port} is not a TCP port; give 1..65535 (or omit it)")
    if workers < 1:
        raise MLOpsUsageError(f"--workers {workers}: give 1 or more")
    if not 0.0 <= log_sample <= 1.0:
        raise MLOpsUsageError(f"--log-sample {log_sample} is not a share; give 0..1 (e.g. 0.1)")
    resolve_version(mlflow_client(settings.tracking_uri), ref)  # unknown model/alias: one line
    if enforce_contract:
        from ..contracts.service import request_checker

        request_checker(settings, enforce_contract)  # an unknown contract: one line, here
    name = f"{model}@{alias}"
    folder = deployment_folder(settings.home, name)
    known = load_record(folder)
    if known is not None:
        if record_alive(known, folder):
            raise MLOpsUsageError(
                f"{name} is already served at {known.url} (pid {known.pid}); "
                f"stop it first with %serve stop {name}"
            )
        shutil.rmtree(folder, ignore_errors=True)  # a dead endpoint's leftovers
    folder.mkdir(parents=True, exist_ok=True)
    options = Options(
        folder=str(folder),
        home=str(settings.home),
        tracking_uri=settings.tracking_uri,
        name=name,
        model=model,
        alias=alias,
        host=host,
        port=port,
        workers=workers,
        detached=detach,
        log_sample=log_sample,
        enforce_contract=enforce_contract,
        parent_pid=None if detach else os.getpid(),
    )
    log_path = folder / records.DEPLOYMENT_LOG
    with log_path.open("ab") as log_file:
        child = subprocess.Popen(
            [sys.executable, "-m", "jupyter_mlops.serving.server", str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **options_env(options)},
            start_new_session=True,
            close_fds=True,
        )
    _children[child.pid] = child
    try:
        record = _wait_ready(child, folder, log_path, ready_seconds)
    except BaseException:
        _terminate(child)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    version = alias_version(settings.tracking_uri, model, alias) or "?"
    return Deployment(
        name=name,
        model=model,
        alias=alias,
        version=_answering_version(record.url) or version,
        url=record.url,
        pid=record.pid,
        host=record.host,
        port=record.port,
        detached=detach,
        workers=workers,
        log_sample=log_sample,
        enforce_contract=enforce_contract,
    )


def _answering_version(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:
            value = response.headers.get(records.HEADER_MODEL_VERSION)
            return str(value) if value else None
    except (OSError, urllib.error.URLError):
        return None


def _last_line(log_path: Path) -> str:
    try:
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "no output"


def _wait_ready(
    child: subprocess.Popen[bytes], folder: Path, log_path: Path, seconds: float
) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise MLOpsError(
                f"the endpoint exited (code {child.returncode}) before it was ready: "
                f"{_last_line(log_path)} (log: {log_path})"
            )
        record = load_record(folder)
        if record is not None and record.pid == child.pid:
            try:
                with urllib.request.urlopen(f"{record.url}/ping", timeout=2) as response:
                    if response.status == 200:
                        return record
            except (OSError, urllib.error.URLError):
                pass
        time.sleep(0.1)
    raise MLOpsError(
        f"the endpoint did not answer /ping within {seconds:.0f} s: {_last_line(log_path)} "
        f"(log: {log_path})"
    )


def _terminate(child: subprocess.Popen[bytes]) -> None:
    import signal

    from ..distributed.procs import signal_group

    if child.poll() is None:
        signal_group(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            signal_group(child.pid, signal.SIGKILL)
            child.wait(timeout=5)
    _children.pop(child.pid, None)


def stop(settings: Settings, name: str) -> list[str]:
    """Stop the endpoint ``name`` (from any kernel of the store); returns the names stopped.

    SIGINT, then SIGTERM, then SIGKILL to its process group (uvicorn finishes requests in flight
    and the endpoint flushes its inference log on the first two); its record is removed.
    """
    from ..distributed.procs import stop as stop_processes

    record, folder = find_record(settings, name)
    if record_alive(record, folder):
        survivors = stop_processes(
            lambda: [record.pid], str(folder), first=record.pid, on_wait=_reap
        )
        if survivors:
            raise MLOpsError(
                f"endpoint {record.name} (pid {record.pid}) did not stop; "
                f"kill it with: kill -9 -{record.pid}"
            )
    _reap()
    for path in folder.glob("*.json"):
        path.unlink(missing_ok=True)
    return [record.name]


def _reap() -> None:
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            _children.pop(pid, None)


def serving_status(settings: Settings) -> ServingStatus:
    """``%serve status``: every endpoint of the store with its live counters."""
    from .deployments import list_deployments

    _reap()
    return ServingStatus(tuple(list_deployments(settings)))
