"""What a kernel uses, left where the Jupyter server can read it: one small file per kernel.

The side panel must show the store the notebook's kernel writes to, including ``%config``
changes made after it started. After ``%load_ext`` and after every cell the kernel writes its
resolved settings (only when they changed) to ``jupyter-mlops-<kernel id>.json`` beside its
connection file, in the Jupyter runtime folder; the server finds that file from the kernel's
own connection file, so both sides agree on the folder without configuration. The write is
atomic (temporary file + rename): a reader sees the old status or the new one, never half.
A kernel removes its file when it exits; one killed (SIGKILL, a crash) cannot, so each kernel
that starts reporting removes the files of kernels that are gone: no connection file left
beside them (Jupyter removes it when the kernel is shut down) and their process dead.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import MLOpsError

STATUS_PREFIX = "jupyter-mlops-"
CONNECTION_PREFIX = "kernel-"
FORMAT = 1
MAX_STATUS_BYTES = 64 * 1024  # a status is a few hundred bytes; anything larger is not ours


def status_path(connection_file: str | Path) -> Path:
    """The status file of the kernel whose connection file this is."""
    path = Path(connection_file)
    kernel_id = path.stem.removeprefix(CONNECTION_PREFIX)
    return path.with_name(f"{STATUS_PREFIX}{kernel_id}.json")


def this_kernel_connection_file() -> Path | None:
    """The running ipykernel's connection file; None outside a Jupyter kernel (plain IPython)."""
    kernelapp = sys.modules.get("ipykernel.kernelapp")
    if kernelapp is None or not kernelapp.IPKernelApp.initialized():
        return None
    app = kernelapp.IPKernelApp.instance()
    name = getattr(app, "abs_connection_file", None) or app.connection_file
    return Path(name) if name else None


def status_record(settings: Settings) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "pid": os.getpid(),
        "home": str(settings.home),
        "tracking_uri": settings.tracking_uri,
        "experiment": settings.experiment,
        "snapshot_store": settings.snapshot_store,
        "gate_mode": settings.gate_mode,
        "display": settings.display,
        "notebook": str(settings.notebook) if settings.notebook else None,
        "sources": dict(settings.sources),
    }


class StatusWriter:
    """Writes one kernel's status file when the settings it reports change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: dict[str, Any] | None = None
        atexit.register(self.remove)
        with contextlib.suppress(OSError):
            remove_orphans(path.parent)

    def write(self, settings: Settings) -> bool:
        """Write the status if it changed; True when the file was (re)written."""
        record = status_record(settings)
        if record == self._written and self.path.exists():
            return False
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record, indent=1))
        os.replace(temporary, self.path)
        self._written = record
        return True

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def remove_orphans(folder: Path) -> list[Path]:
    """Remove the status files (and half-written temporaries) of kernels that are gone from
    ``folder``; returns them. A file whose kernel may still run (its connection file is there,
    or its process is alive, or it cannot be read) stays."""
    removed = []
    for path in folder.glob(f"{STATUS_PREFIX}*.json"):
        kernel_id = path.stem.removeprefix(STATUS_PREFIX)
        connections = [f"{CONNECTION_PREFIX}{kernel_id}.json", f"{kernel_id}.json"]
        if any((folder / name).exists() for name in connections):
            continue
        try:
            if path.stat().st_size > MAX_STATUS_BYTES:
                continue
            pid = json.loads(path.read_text()).get("pid")
        except (OSError, ValueError, AttributeError):
            continue
        if not _alive(pid):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    for temporary in folder.glob(f".{STATUS_PREFIX}*.tmp"):  # .<name>.<pid>.tmp
        pid = temporary.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                temporary.unlink()
                removed.append(temporary)
    return removed


def read_status(
    connection_file: str | Path, experiment: str | None = None, pid: int | None = None
) -> Settings | None:
    """The settings a kernel last reported, or None when it never reported (or not readably).

    ``pid`` is the kernel's process now: a file left by an earlier process of the same kernel
    (killed, then restarted by Jupyter) is not what the running one uses, so it counts as none.
    ``experiment`` replaces the reported experiment (the panel's experiment selector).
    ``sources["kernel"]`` names the status file, so callers can say where the store came from.
    """
    path = status_path(connection_file)
    try:
        if path.stat().st_size > MAX_STATUS_BYTES:
            return None
        record = json.loads(path.read_text())
        if record.get("format") != FORMAT or (pid is not None and record.get("pid") != pid):
            return None
        home = Path(record["home"])
        notebook = record.get("notebook")
        sources = {str(k): str(v) for k, v in dict(record.get("sources") or {}).items()}
        sources["kernel"] = str(path)
        if experiment:
            record["experiment"], sources["experiment"] = experiment, "panel"
        return Settings(
            home=home,
            home_exists=home.is_dir(),
            tracking_uri=str(record["tracking_uri"]),
            experiment=str(record["experiment"]),
            snapshot_store=str(record["snapshot_store"]),
            gate_mode=str(record["gate_mode"]),
            display=str(record["display"]),
            notebook=Path(notebook) if notebook else None,
            sources=sources,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def reporter() -> Callable[..., None] | None:
    """A post_run_cell callback that keeps this kernel's status file current; None outside one."""
    connection = this_kernel_connection_file()
    if connection is None:
        return None
    writer = StatusWriter(status_path(connection))

    def report(*_: Any) -> None:
        from .context import current_settings

        # A bad setting is reported by the magic that uses it; the panel keeps the last status.
        with contextlib.suppress(MLOpsError, OSError):
            writer.write(current_settings(create_home=False))

    report.mlops_status_hook = True  # type: ignore[attr-defined]
    return report
