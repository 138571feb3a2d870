"""Where a snapshot came from: notebook, cell, git commit, user, host, package versions."""

from __future__ import annotations

import getpass
import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..context import current_notebook, user_namespace
from ..environment import package_version
from .hashing import digest_bytes


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_state(cwd: Path) -> dict[str, Any] | None:
    commit = _git(cwd, "rev-parse", "HEAD")
    if not commit:
        return None
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "dirty": bool(status),
        "remote": _git(cwd, "config", "--get", "remote.origin.url") or None,
    }


def cell_source() -> tuple[int | None, str | None]:
    """The running cell's execution count and source, from IPython's input history."""
    history = user_namespace().get("In")
    if not isinstance(history, list) or len(history) < 2:
        return None, None
    return len(history) - 1, history[-1]


def provenance() -> dict[str, Any]:
    count, source = cell_source()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return {
        "notebook": str(current_notebook().path or "") or None,
        "cell": {
            "execution_count": count,
            "source": source,
            "source_blake3": digest_bytes(source.encode()) if source else None,
        },
        "git": git_state(Path.cwd()),
        "user": user,
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "packages": {
            name: package_version(name) for name in ("pandas", "pyarrow", "numpy", "jupyter_mlops")
        },
        "argv0": Path(sys.argv[0]).name if sys.argv and sys.argv[0] else None,
    }
