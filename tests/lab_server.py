"""A real `jupyter lab` on loopback and a headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NO_NEWS = {"fetchNews": "false", "checkForUpdates": False}


@dataclass(frozen=True)
class LabServer:
    """A Jupyter server running on 127.0.0.1: its address, token, root folder and process id."""

    url: str
    token: str
    root: Path
    pid: int

    def page_url(self, path: str = "lab") -> str:
        return f"{self.url}/{path}?reset&token={self.token}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_server(
    app: str,
    options: Sequence[str],
    root: Path,
    log: Path,
    ready_path: str = "api/status",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 90.0,
    argv: Sequence[str] | None = None,
) -> Iterator[LabServer]:
    """Start ``python -m app`` (or ``python *argv``: a script that runs ``app``) with a token on
    127.0.0.1 serving ``root``, its output in ``log``; ready when ``ready_path`` answers;
    stopped afterwards, its process group killed if it hangs."""
    token, port = secrets.token_hex(16), free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [
                sys.executable,
                *(argv if argv is not None else ["-m", app]),
                "--no-browser",
                "--allow-root",
                "--ip=127.0.0.1",
                f"--port={port}",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                *options,
            ],
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/{ready_path}?token={token}", timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{app} did not start: {log.read_text()[-2000:]}"
                        ) from None
                    time.sleep(0.3)
            yield LabServer(url, token, root, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


@contextmanager
def running_lab(root: Path, state: Path, timeout: float = 90.0) -> Iterator[LabServer]:
    """Start `jupyter lab` with a token on 127.0.0.1; stop it (and its kernels) afterwards."""
    settings = state / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps(NO_NEWS))
    # jupyter-scheduler (the [schedule] extra), when installed, is off here: server and frontend
    (state / "app-settings").mkdir(exist_ok=True)
    no_scheduler = {"disabledExtensions": ["@jupyterlab/scheduler"]}
    (state / "app-settings" / "page_config.json").write_text(json.dumps(no_scheduler))
    options = [
        f"--LabApp.workspaces_dir={state / 'workspaces'}",
        f"--LabApp.user_settings_dir={state / 'user-settings'}",
        f"--LabApp.app_settings_dir={state / 'app-settings'}",
        "--ServerApp.jpserver_extensions=jupyter_scheduler=False",
    ]
    with running_server("jupyterlab", options, root, state / "lab.log", timeout=timeout) as lab:
        yield lab


@contextmanager
def chromium_page(profile: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


SHOTS = Path(__file__).resolve().parent / "ui"  # screenshots the browser tests leave to look at
PANEL_TAB = '.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="jupyter-mlops-panel"]'


def widen_left_panel(page: Any, width: int) -> None:
    """Drag the split handle right of the left sidebar so tables read well in screenshots."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 1, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(width, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()


def open_mlops_panel(page: Any, lab: LabServer, path: str = "lab") -> None:
    page.goto(lab.page_url(path))
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
    page.click(PANEL_TAB)
    page.get_by_test_id("mlops-panel").wait_for(timeout=30_000)
