"""Which notebook is this kernel running? Asked of several witnesses, most specific first.

MLflow records ``ipykernel_launcher.py`` here; we look at what each front end leaves behind:
papermill's injected ``PAPERMILL_INPUT_PATH``, VS Code's ``__vsc_ipynb_file__``, the batch runner
that launched the kernel (nbconvert, papermill, jupyter execute, pytest/nbval, found through the
parent process's command line), and Jupyter Server's ``JPY_SESSION_NAME`` (JupyterLab, Notebook 7).
The batch runner comes before ``JPY_SESSION_NAME`` because a runner started from inside a
JupyterLab kernel inherits that kernel's variable.

``JPY_SESSION_NAME`` is the path the notebook had when its kernel started; renaming the
notebook (``Untitled.ipynb`` -> ``magics.ipynb``) does not change it. So a kernel started by
a Jupyter server asks that server's sessions API for its current path: the server that
launched it is named by ``JPY_PARENT_PID``, its URL and token are in ``jpserver-<pid>.json``
beside the kernel's connection file, and the kernel's id is in that connection file's name.
The answer is kept for a few seconds, so asking once per cell costs one local request at most.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTPUT_OPTIONS = ("--output", "-o")  # nbconvert's output notebook is not the one being run
BATCH_RUNNERS = ("nbconvert", "papermill", "jupyter-execute", "pytest", "py.test", "nbclient")
SESSION_TTL_S = 2.0  # how long the server's answer is reused
SESSION_TIMEOUT_S = 1.0  # a server that does not answer in time is not asked again for a TTL


@dataclass(frozen=True)
class NotebookIdentity:
    path: Path | None
    source: str  # papermill, vscode, batch runner name, jupyter-server, or unknown

    def __str__(self) -> str:
        return f"{self.path} (via {self.source})" if self.path else "unknown"


def _read_proc(pid: int, name: str) -> bytes | None:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as fh:
            return fh.read()
    except OSError:
        return None


def runner_notebook(argv: Sequence[str], cwd: Path) -> tuple[Path, str] | None:
    """The notebook named on a batch runner's command line, if argv is one."""
    words = " ".join(Path(a).name for a in argv[:4])
    runner = next((r for r in BATCH_RUNNERS if r in words), None)
    if runner is None and argv[1:2] == ["execute"]:
        runner = "jupyter-execute"
    if runner is None:
        return None
    notebooks = [
        arg
        for before, arg in itertools.pairwise(argv)
        if arg.endswith(".ipynb") and not arg.startswith("-") and before not in OUTPUT_OPTIONS
    ]
    # papermill's first notebook is the input; others must name exactly one notebook.
    if not notebooks or (runner != "papermill" and len(notebooks) != 1):
        return None
    path = Path(notebooks[0]).expanduser()
    return (path if path.is_absolute() else cwd / path), runner


def parent_runner_notebook(pid: int | None = None) -> tuple[Path, str] | None:
    ppid = os.getppid() if pid is None else pid
    raw = _read_proc(ppid, "cmdline")
    if not raw:
        return None
    argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    try:
        cwd = Path(os.readlink(f"/proc/{ppid}/cwd"))
    except OSError:
        cwd = Path.cwd()
    return runner_notebook(argv, cwd)


def kernel_connection_file(argv: Sequence[str]) -> Path | None:
    """The connection file a Jupyter kernel was launched with (``-f FILE``)."""
    for index, arg in enumerate(argv):
        if arg == "-f" and index + 1 < len(argv):
            return Path(argv[index + 1])
        if arg.startswith(("-f=", "--f=")):
            return Path(arg.split("=", 1)[1])
    return None


def server_session_path(connection_file: Path, server_pid: int) -> Path | None:
    """The notebook path the Jupyter server (``server_pid``) now holds for this kernel."""
    import urllib.request  # only kernels started by a Jupyter server get here

    kernel_id = connection_file.stem.removeprefix("kernel-")
    try:
        info = json.loads((connection_file.parent / f"jpserver-{server_pid}.json").read_text())
        request = urllib.request.Request(
            info["url"].rstrip("/") + "/api/sessions",
            headers={"Authorization": f"token {info.get('token', '')}"},
        )
        with urllib.request.urlopen(request, timeout=SESSION_TIMEOUT_S) as reply:
            sessions = json.load(reply)
        root = Path(info["root_dir"]).expanduser()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for session in sessions if isinstance(sessions, list) else []:
        kernel = session.get("kernel") or {}
        path = session.get("path") or ""
        if kernel.get("id") == kernel_id and path.endswith(".ipynb"):
            return root / path
    return None


_session_cache: dict[tuple[Path, int], tuple[float, Path | None]] = {}


def current_session_path(env: Mapping[str, str], argv: Sequence[str]) -> Path | None:
    """This kernel's notebook per its Jupyter server, reused for ``SESSION_TTL_S``."""
    connection_file = kernel_connection_file(argv)
    server_pid = env.get("JPY_PARENT_PID", "")
    if connection_file is None or not server_pid.isdigit():
        return None
    key = (connection_file, int(server_pid))
    now = time.monotonic()
    cached = _session_cache.get(key)
    if cached is not None and now - cached[0] < SESSION_TTL_S:
        return cached[1]
    path = server_session_path(*key)
    _session_cache[key] = (time.monotonic(), path)
    return path


def resolve_notebook(
    user_ns: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    parent_pid: int | None = None,
    argv: Sequence[str] | None = None,
) -> NotebookIdentity:
    user_ns = user_ns or {}
    env = os.environ if env is None else env
    for variable, source in (
        ("PAPERMILL_INPUT_PATH", "papermill"),
        ("__vsc_ipynb_file__", "vscode"),
    ):
        value = user_ns.get(variable)
        if isinstance(value, str) and value.endswith(".ipynb"):
            return NotebookIdentity(Path(value).expanduser().resolve(), source)
    found = parent_runner_notebook(parent_pid)
    if found:
        return NotebookIdentity(found[0].resolve(), found[1])
    session = env.get("JPY_SESSION_NAME", "")
    if session:  # started by a Jupyter server: ask it, the notebook may have been renamed
        renamed = current_session_path(env, sys.argv if argv is None else argv)
        if renamed is not None:
            return NotebookIdentity(renamed.resolve(), "jupyter-server")
    if session.endswith(".ipynb"):
        return NotebookIdentity(Path(session).expanduser().resolve(), "jupyter-server")
    return NotebookIdentity(None, "unknown")
