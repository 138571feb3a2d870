"""SIGTERM (how a kernel is shut down) while tracked runs are open: end them, keep the values.

By default SIGTERM ends a Python process on the spot: an open run stays RUNNING and the values
still in memory are lost. While a run opened here is open, SIGTERM instead raises
:class:`Terminated` (a ``KeyboardInterrupt``) in the main thread, so the cell unwinds and each
run ends KILLED, with the unwritten values kept on disk (see :mod:`.spill`); once the last run has
ended the signal is delivered again to whatever handled it before, and the process ends as asked.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any

requested = threading.Event()  # a SIGTERM arrived while runs were open
_previous: list[Any] = []  # the handler we replaced, while ours is installed


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM while a tracked run was open."""


def _terminate(signum: int, frame: Any) -> None:
    requested.set()
    raise Terminated("SIGTERM: the process is being shut down")


def guard() -> None:
    """Install the handler (main thread only; other threads cannot set one)."""
    if _previous or threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError):  # not the main interpreter
        _previous.append(signal.signal(signal.SIGTERM, _terminate))


def release() -> None:
    """Put back the handler that was there before (when no run is open any more)."""
    if _previous:
        signal.signal(signal.SIGTERM, _previous.pop())


def resend() -> None:
    """Deliver the SIGTERM that was held while the runs ended, to the original handler."""
    release()
    signal.raise_signal(signal.SIGTERM)
