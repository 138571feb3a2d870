"""Which notebook is this kernel running? Asked of several witnesses, most specific first.

MLflow records ``ipykernel_launcher.py`` here; we look at what each front end leaves behind:
papermill's injected ``PAPERMILL_INPUT_PATH``, VS Code's ``__vsc_ipynb_file__``, the batch runner
that launched the kernel (nbconvert, papermill, jupyter execute, pytest/nbval, found through the
parent process's command line), and Jupyter Server's ``JPY_SESSION_NAME`` (JupyterLab, Notebook 7).
The batch runner comes before ``JPY_SESSION_NAME`` because a runner started from inside a
JupyterLab kernel inherits that kernel's variable.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTPUT_OPTIONS = ("--output", "-o")  # nbconvert's output notebook is not the one being run
BATCH_RUNNERS = ("nbconvert", "papermill", "jupyter-execute", "pytest", "py.test", "nbclient")


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


def resolve_notebook(
    user_ns: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    parent_pid: int | None = None,
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
    if session.endswith(".ipynb"):
        return NotebookIdentity(Path(session).expanduser().resolve(), "jupyter-server")
    return NotebookIdentity(None, "unknown")
