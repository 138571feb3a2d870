"""Run a notebook through papermill in a child process: ``--retrain`` and scheduled executions.

A child process, never the caller's kernel: the notebook gets a fresh kernel, the same store
(``MLOPS_HOME``, the tracking URI) and its parameters; papermill writes the executed notebook up
to a failing cell, and exits non-zero when a cell (or a gate) failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings

TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Execution:
    notebook: str
    output: str
    returncode: int
    error: str  # the last meaningful line of papermill's output on failure


def command(notebook: str | Path, output: str | Path, parameters: Mapping[str, Any]) -> list[str]:
    """``papermill IN OUT -p k v ...``; the same command a CronJob runs."""
    argv = ["papermill", str(notebook), str(output), "--cwd", str(Path(notebook).parent or ".")]
    for key, value in parameters.items():
        argv += ["-p", str(key), str(value)]
    return argv


def execute(
    settings: Settings,
    notebook: str | Path,
    output: Path,
    parameters: Mapping[str, Any],
    timeout: float = TIMEOUT_S,
) -> Execution:
    output.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "MLOPS_HOME": str(settings.home),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
    }
    argv = command(Path(notebook).resolve(), output, parameters)
    try:
        done = subprocess.run(
            [sys.executable, "-m", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Execution(str(notebook), str(output), -1, f"timed out after {timeout:g} s")
    error = ""
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        error = next(
            (ln for ln in reversed(lines) if "Error" in ln or "Failed" in ln),
            lines[-1] if lines else "",
        )[:300]
    return Execution(str(notebook), str(output), done.returncode, error)
