"""The Python API: ``import jupyter_mlops as mlops`` mirrors every magic, for scripts and tests."""

from __future__ import annotations

from .context import current_notebook, current_settings
from .diagnostics import DoctorReport, Status
from .diagnostics import doctor as run_doctor


def status() -> Status:
    """Which store, tracking URI, experiment and notebook this process uses, and why."""
    return Status(current_settings(), current_notebook())


def doctor() -> DoctorReport:
    """Check the store, MLflow, the notebook path, torch, GPUs, torchrun and the labextension."""
    return run_doctor(current_settings(), current_notebook())
