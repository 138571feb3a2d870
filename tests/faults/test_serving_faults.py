"""Endpoints and dying kernels, for real: a kernel killed with SIGKILL under load takes its
endpoint with it (and the endpoint's log keeps every request it answered); a detached endpoint
outlives its kernel and is stopped from another kernel."""

from __future__ import annotations

import os
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from jupyter_mlops.config import Settings
from jupyter_mlops.distributed.procs import alive
from jupyter_mlops.serving.bench import load
from jupyter_mlops.serving.deployments import list_deployments
from jupyter_mlops.serving.launch import stop
from jupyter_mlops.serving.traffic import read_traffic
from tests.kernel_support import ok
from tests.serving_support import (
    TELLING_ROW,
    register_two_versions,
    split_body,
    store_settings,
    wait_until,
)


@pytest.fixture(scope="module")
def settings(template_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = store_settings(template_store, tmp_path_factory.mktemp("serving-faults"))
    register_two_versions(settings, "killed")
    register_two_versions(settings, "detached")
    return settings


def start_kernel(settings: Settings) -> tuple[KernelManager, Any]:
    manager = KernelManager(kernel_name="python3")
    env = {**os.environ, "MLOPS_HOME": str(settings.home)}
    manager.start_kernel(cwd=str(settings.home.parent), env=env)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    ok(client, "%load_ext jupyter_mlops")
    return manager, client


@pytest.fixture
def kernels(settings: Settings) -> Iterator[list[tuple[KernelManager, Any]]]:
    started: list[tuple[KernelManager, Any]] = []
    yield started
    for manager, client in started:
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)
    for deployment in list_deployments(settings):  # a failed test leaves no endpoint behind
        if deployment.alive:
            stop(settings, deployment.name)


def serve_in(client: Any, ref: str, flags: str = "") -> tuple[int, str]:
    text = ok(client, f"d = %serve {ref} {flags}\nprint(d.pid, d.url)", timeout=180)
    pid, url = text.split()[-2:]
    return int(pid), url


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def kernel_pid(manager: KernelManager) -> int:
    return int(manager.provisioner.process.pid)  # type: ignore[union-attr]


def test_sigkill_of_the_kernel_under_load_leaves_no_server_and_loses_no_answered_request(
    settings: Settings, kernels: list[tuple[KernelManager, Any]]
) -> None:
    kernels.append(start_kernel(settings))
    manager, client = kernels[0]
    pid, url = serve_in(client, "killed@prod")
    result: dict[str, Any] = {}
    body = split_body([TELLING_ROW]).encode()
    loader = threading.Thread(
        target=lambda: result.setdefault("load", load(url, body, clients=4, seconds=3))
    )
    loader.start()
    wait_until(lambda: sum(d.requests for d in list_deployments(settings)) > 10, 30, "load")
    os.kill(kernel_pid(manager), signal.SIGKILL)
    wait_until(lambda: not alive(pid), 20, "the endpoint went with its kernel")
    loader.join(timeout=60)
    assert not answers(url)
    answered = result["load"].statuses.get(200, 0)
    assert answered > 10
    assert len(read_traffic(settings, "killed", "prod")) == answered
    [row] = list_deployments(settings)
    assert not row.alive  # listed as dead until %serve stop clears it


def test_a_detached_endpoint_outlives_its_kernel_and_another_kernel_stops_it(
    settings: Settings, kernels: list[tuple[KernelManager, Any]]
) -> None:
    kernels.append(start_kernel(settings))
    first, client = kernels[0]
    pid, url = serve_in(client, "detached@prod", "--detach")
    os.kill(kernel_pid(first), signal.SIGKILL)
    wait_until(lambda: not first.is_alive(), 20, "the first kernel died")
    assert alive(pid) and answers(url)
    kernels.append(start_kernel(settings))
    _, other = kernels[1]
    listed = ok(other, "s = %serve status\nprint(s)")
    assert "detached@prod" in listed and url in listed
    assert "stopped detached@prod" in ok(other, "%serve stop detached@prod")
    wait_until(lambda: not alive(pid), 20, "the detached endpoint stopped")
    assert not answers(url)
    assert "detached@prod" not in ok(other, "s = %serve status\nprint(s)")
