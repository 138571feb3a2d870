"""jupyter-mlops: notebook-native MLOps from IPython magics and a JupyterLab side panel.

``%load_ext jupyter_mlops`` registers the magics; ``import jupyter_mlops as mlops`` gives the same
operations as functions. Heavy libraries (mlflow, torch, plotly, pyarrow) load on first use.
"""

from __future__ import annotations

import sys
from typing import Any

# Capability packages named like API functions are imported before the API, so that the
# attributes `mlops.snapshots` and `mlops.drift` end up being the functions SURFACE.md names.
from . import contracts as _contracts_package  # noqa: F401
from . import distributed
from . import drift as _drift_package  # noqa: F401
from . import lineage as _lineage_package  # noqa: F401
from . import snapshots as _snapshots_package  # noqa: F401
from .api import (
    check_contract,
    compare,
    contracts,
    diff,
    doctor,
    drift,
    expect,
    feedback,
    gate,
    gc_snapshots,
    lineage,
    load,
    load_model,
    log,
    log_artifact,
    log_params,
    monitor,
    promote,
    register,
    remove_snapshot,
    reproduce,
    runs,
    score,
    serve,
    skew,
    snapshot,
    snapshots,
    status,
    track,
    traffic,
    verify_snapshots,
)
from .config import MLOps
from .distributed import DistributedCellError
from .errors import ConfigError, GateFailed, MLOpsError, MLOpsUsageError
from .snapshots.errors import SnapshotCorrupted, SnapshotRemoved

try:
    from ._version import __version__
except ImportError:  # a source tree that was never built
    __version__ = "0.0.0+unknown"

__all__ = [
    "ConfigError",
    "DistributedCellError",
    "GateFailed",
    "MLOps",
    "MLOpsError",
    "MLOpsUsageError",
    "SnapshotCorrupted",
    "SnapshotRemoved",
    "__version__",
    "check_contract",
    "compare",
    "contracts",
    "diff",
    "distributed",
    "doctor",
    "drift",
    "expect",
    "feedback",
    "gate",
    "gc_snapshots",
    "lineage",
    "load",
    "load_model",
    "log",
    "log_artifact",
    "log_params",
    "monitor",
    "promote",
    "register",
    "remove_snapshot",
    "reproduce",
    "runs",
    "score",
    "serve",
    "skew",
    "snapshot",
    "snapshots",
    "status",
    "track",
    "traffic",
    "verify_snapshots",
]


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext jupyter_mlops``: register the configurable, the magics and the HTML forms."""
    from .display import register_formatters
    from .magics import register_magics
    from .magics.completion import install_completer

    config = MLOps.instance()
    for problem in config.apply_leniently(shell.config):
        print(f"jupyter_mlops: ignored a configured value: {problem}", file=sys.stderr)
    shell.configurables[:] = [c for c in shell.configurables if not isinstance(c, MLOps)]
    shell.configurables.append(config)
    register_magics(shell)
    install_completer(shell)
    register_formatters(shell)
    report_kernel_status(shell)


def report_kernel_status(shell: Any) -> None:
    """Keep this kernel's status file (its store and experiment) current for the side panel."""
    from .kernel_status import reporter

    hooks = shell.events.callbacks["post_run_cell"]
    if any(getattr(cb, "mlops_status_hook", False) for cb in hooks):
        return
    report = reporter()
    if report is not None:
        shell.events.register("post_run_cell", report)
        report()


def _register_html_forms() -> None:
    """``import jupyter_mlops`` in a notebook renders results as HTML without ``%load_ext``.

    Only when IPython is already imported and a shell runs: a script never pays for IPython.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and getattr(shell, "display_formatter", None) is not None:
        from .display import register_formatters

        register_formatters(shell)


_register_html_forms()


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-mlops"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyter_mlops"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from .server import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("jupyter_mlops: REST API registered under /jupyter-mlops/api/")
