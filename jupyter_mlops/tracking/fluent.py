"""MLflow's fluent API sees a tracked run while it is open, and nothing of it afterwards.

``mlflow.log_metric``, ``mlflow.active_run()`` and autologging (``mlflow.sklearn.autolog()``)
read MLflow's module-level state: the tracking and registry URIs, the active experiment and a
per-thread stack of active runs. Without this, code inside ``%%track`` would write a second run
into MLflow's default store (``./mlflow.db``). :func:`attach` points that state at our run;
:func:`detach` puts back exactly what was there (values and the environment variables MLflow's
setters write), so whatever the user configured outside our runs is left as it was.

Our run is pushed onto MLflow's stack, not started with ``mlflow.start_run``: that would set it
RUNNING again and register an ``end_run`` at exit, and only :class:`~.run.TrackedRun` ends it.
A run the user opened with ``mlflow.start_run()`` stays below ours and is active again after.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .client import interrupt_afterwards, registry_uri_for

if TYPE_CHECKING:
    from mlflow.entities import Run

ENV_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@dataclass
class FluentState:
    """What MLflow's fluent globals held before our run was attached."""

    tracking_uri: str | None
    registry_uri: str | None
    experiment_id: str | None
    env: dict[str, str | None] = field(default_factory=dict)
    pushed: Any = None  # the mlflow ActiveRun we put on the stack
    thread: int = 0  # MLflow's run stack is per thread


def attach(run: Run, tracking_uri: str) -> FluentState:
    """Make ``run`` (as the store returned it) MLflow's active run, in its store, registry and
    experiment. (``mlflow.start_run(run_id=...)`` would read the run again: 10 ms on SQLite.)
    """
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = FluentState(
        tracking_uri=tracking_utils._tracking_uri,
        registry_uri=registry_utils._registry_uri,
        experiment_id=fluent._active_experiment_id,
        env={name: os.environ.get(name) for name in ENV_VARS},
        thread=threading.get_ident(),
    )
    try:
        # set_tracking_uri also resets MLflow's tracer, so traces follow the run into our store.
        tracking_utils.set_tracking_uri(tracking_uri)
        if tracking_uri.startswith("sqlite:"):
            hold_interrupts_in_sessions(tracking_utils._get_store(tracking_uri))
        registry_utils.set_registry_uri(registry_uri_for(tracking_uri))
        fluent._active_experiment_id = run.info.experiment_id  # type: ignore[assignment]
        saved.pushed = fluent.ActiveRun(run)
        fluent._active_run_stack.get().append(saved.pushed)
    except BaseException:  # a Ctrl-C half way: put back what was changed
        detach(saved)
        raise
    return saved


def detach(saved: FluentState) -> None:
    """Take our run off MLflow's stack and restore the URIs, experiment and env vars."""
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    # The stack of the thread that attached (the run may end on another, e.g. at exit), and
    # by identity: the cell may have ended our run itself or left a nested run above it.
    stack = fluent._active_run_stack.get_all_thread_values().get(saved.thread, [])
    for index in range(len(stack) - 1, -1, -1):
        if stack[index] is saved.pushed:
            del stack[index]
            break
    if tracking_utils._tracking_uri != saved.tracking_uri:
        tracking_utils.set_tracking_uri(saved.tracking_uri)
    registry_utils._registry_uri = saved.registry_uri  # type: ignore[assignment]
    fluent._active_experiment_id = saved.experiment_id  # type: ignore[assignment]
    for name, value in saved.env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def hold_interrupts_in_sessions(store: Any) -> None:
    """A Ctrl-C during one of MLflow's own store sessions (``mlflow.log_metric`` in a tracked
    cell) waits until the session is closed.

    Landing between two instructions of MLflow's session context manager (after the session
    opened, before its ``with`` took hold), the interrupt left the generator paused at
    ``yield session``: its session kept its SQLite connection and lock, and the run's final
    writes waited on it for ever. A session lasts milliseconds, so the Ctrl-C is barely delayed.
    """
    maker = store.ManagedSessionMaker
    if getattr(maker, "interrupts_held", False):
        return

    @contextlib.contextmanager
    def held(*args: Any, **kwargs: Any) -> Any:
        with interrupt_afterwards("MLflow's write is done"), maker(*args, **kwargs) as session:
            yield session

    held.interrupts_held = True  # type: ignore[attr-defined]
    store.ManagedSessionMaker = held


def release_sessions(exc: BaseException, tracking_uri: str) -> None:
    """After a Ctrl-C, free the SQLite write lock MLflow's own write may have left held.

    A Ctrl-C that lands inside ``mlflow.log_metric`` at the wrong instruction can leave its
    SQLAlchemy session open (kept alive by the traceback's frames) or return its connection to
    the pool with the transaction still open: the run's final writes would then wait on the
    lock. The sessions are closed and the store's pooled connections dropped (closing a SQLite
    connection rolls back its unfinished write); connections in use elsewhere are untouched.
    """
    if not isinstance(exc, KeyboardInterrupt) or not tracking_uri.startswith("sqlite:"):
        return
    orm = sys.modules.get("sqlalchemy.orm")
    engine = sys.modules.get("sqlalchemy.engine")
    if orm is None or engine is None:
        return
    connections: list[Any] = []
    sessions: list[Any] = []
    tb = exc.__traceback__
    while tb is not None:  # only frames the Ctrl-C unwound: nothing another thread uses
        for value in list(tb.tb_frame.f_locals.values()):
            if isinstance(value, orm.Session):
                sessions.append(value)
                value = value._transaction
            if isinstance(value, orm.SessionTransaction):
                connections.extend(entry[0] for entry in value._connections.values())
            elif isinstance(value, engine.Connection):
                connections.append(value)
        tb = tb.tb_next
    for item in (*connections, *sessions):
        with contextlib.suppress(Exception):  # already closed, or closed half way
            if isinstance(item, engine.Connection):
                item.invalidate()  # closes the SQLite connection: its write is rolled back
            else:
                item.close()
    gc.collect()  # a connection dropped half way through its reset is only closed when collected
    from mlflow.tracking._tracking_service.utils import _get_store

    with contextlib.suppress(Exception):
        _get_store(tracking_uri).engine.dispose()
