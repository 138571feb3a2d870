"""Bounded calls to a remote tracking server: a hung server costs seconds, not minutes.

MLflow reads its HTTP timeout and retry count from ``MLFLOW_HTTP_REQUEST_TIMEOUT`` and
``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` on every request; their defaults (120 s, 7 retries with
back-off) let one call to a server that accepts and never answers take many minutes. Setting the
variables would change every MLflow call of the process, and of every kernel a Jupyter server
starts, so :func:`bounded` applies tighter limits to the calls made by the current thread only:
MLflow's HTTP request function is wrapped once (on first use) to fill in the timeout and retry
count a caller left unset, and only inside ``bounded()``.

A user who sets either variable gets that value here too.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ..errors import MLOpsError

CONNECT_S = 5.0
READ_S = 15.0
RETRIES = 0

_bounds = threading.local()
_install = threading.Lock()


class TrackingServerUnavailable(MLOpsError):
    """A remote tracking server did not answer within the bound (or refused the connection)."""

    def _render_traceback_(self) -> list[str]:
        """One line in a notebook (IPython shows this instead of a traceback)."""
        return [f"TrackingServerUnavailable: {self}"]


def limits() -> tuple[tuple[float, float], int]:
    """((connect, read) timeout in seconds, retries), honouring MLflow's own variables."""
    read, retries = READ_S, RETRIES
    text = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "").strip()
    if text:
        with suppress(ValueError):
            read = max(float(text), 0.1)
    text = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "").strip()
    if text.isdigit():
        retries = int(text)
    return (min(CONNECT_S, read), read), retries


def worst_case_s() -> float:
    """The longest one bounded HTTP call can take (connect and read, each attempt)."""
    (connect, read), retries = limits()
    return (connect + read) * (retries + 1)


def _install_bounds() -> None:
    from mlflow.utils import rest_utils

    with _install:
        if getattr(rest_utils.http_request, "_mlops_bounded", False):
            return
        unbounded: Callable[..., Any] = rest_utils.http_request

        @functools.wraps(unbounded)
        def http_request(*args: Any, **kwargs: Any) -> Any:
            chosen = getattr(_bounds, "limits", None)
            if chosen is not None:
                timeout, retries = chosen
                if kwargs.get("timeout") is None:
                    kwargs["timeout"] = timeout
                if kwargs.get("max_retries") is None:
                    kwargs["max_retries"] = retries
            return unbounded(*args, **kwargs)

        http_request._mlops_bounded = True  # type: ignore[attr-defined]
        rest_utils.http_request = http_request


def is_remote(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def is_unanswered(exc: BaseException) -> bool:
    """MLflow's wording for an HTTP call that timed out or could not connect."""
    text = str(getattr(exc, "message", exc))
    failed = " failed with exception " in text or " failed with timeout exception " in text
    return text.startswith("API request to ") and failed


def unanswered(tracking_uri: str, seconds: float) -> str:
    return (
        f"the tracking server {tracking_uri} did not answer within {seconds:.0f} s; check that "
        "it runs and is reachable, or point MLOps.tracking_uri at another store"
    )


@contextmanager
def bounded(tracking_uri: str) -> Iterator[None]:
    """MLflow HTTP calls of this thread time out per :func:`limits`; a silent server is one error.

    Local stores (SQLite, files) make no HTTP calls: for them this does nothing.
    """
    if not is_remote(tracking_uri):
        yield
        return
    _install_bounds()
    previous = getattr(_bounds, "limits", None)
    _bounds.limits = limits()
    try:
        yield
    except Exception as exc:
        if not is_unanswered(exc):
            raise
        raise TrackingServerUnavailable(unanswered(tracking_uri, worst_case_s())) from None
    finally:
        _bounds.limits = previous
