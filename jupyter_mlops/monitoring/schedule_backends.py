"""Who runs ``%schedule``'s notebooks: the backends, registered by name, and the one choice.

- ``jupyter-scheduler`` (:mod:`.scheduler_jupyter`): when the package imports (the ``[schedule]``
  extra) and the Jupyter server running this kernel has the extension enabled.
- ``apscheduler`` (:mod:`.schedules`): otherwise; its job store is in the project store.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..config import Settings
from ..errors import MLOpsUsageError
from . import schedules
from .schedules import Schedule, ScheduleList


class Backend(Protocol):
    @property
    def name(self) -> str: ...

    def add(
        self, settings: Settings, notebook: str, cron: str, parameters: Mapping[str, Any]
    ) -> Schedule: ...

    def list(self, settings: Settings) -> ScheduleList: ...

    def remove(self, settings: Settings, schedule_id: str) -> ScheduleList: ...


@dataclass(frozen=True)
class APSchedulerBackend:
    name: str = "apscheduler"

    def add(
        self, settings: Settings, notebook: str, cron: str, parameters: Mapping[str, Any]
    ) -> Schedule:
        return schedules.add(settings, notebook, cron, parameters)

    def list(self, settings: Settings) -> ScheduleList:
        return schedules.list_schedules(settings)

    def remove(self, settings: Settings, schedule_id: str) -> ScheduleList:
        return schedules.remove(settings, schedule_id)


def _apscheduler() -> Backend | str:
    return APSchedulerBackend()


def _jupyter_scheduler() -> Backend | str:
    """The backend, or why it cannot be used here."""
    if importlib.util.find_spec("jupyter_scheduler") is None:
        return "jupyter-scheduler is not installed: pip install 'jupyter-mlops[schedule]'"
    from .scheduler_jupyter import JupyterSchedulerBackend, kernel_server

    server = kernel_server()
    if server is None:
        return "this kernel was not started by a Jupyter server"
    if not server.has_scheduler():
        return f"the Jupyter server {server.url} does not run the jupyter_scheduler extension"
    return JupyterSchedulerBackend(server)


# Preference order: the first one available here is used.
BACKENDS: dict[str, Callable[[], Backend | str]] = {
    "jupyter-scheduler": _jupyter_scheduler,
    "apscheduler": _apscheduler,
}


def choose(name: str | None = None) -> Backend:
    """The named backend (a one-line error when it cannot run here), else the first available."""
    if name is not None:
        if name not in BACKENDS:
            raise MLOpsUsageError(
                f"--backend {name!r} is not a schedule backend; use one of {', '.join(BACKENDS)}"
            )
        found = BACKENDS[name]()
        if isinstance(found, str):
            raise MLOpsUsageError(f"--backend {name}: {found}")
        return found
    for make in BACKENDS.values():
        found = make()
        if not isinstance(found, str):
            return found
    raise MLOpsUsageError("no schedule backend can run here")  # apscheduler always can
