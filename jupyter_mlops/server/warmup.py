"""MLflow is imported by the first request that needs it, never when the server starts.

A Jupyter server that never opens the panel does not pay for MLflow (about 180 MB). Two threads
importing MLflow at once can meet its circular imports half-initialised, so the first import is
serialised by a lock; later requests find it done at the cost of one flag test. The garbage
collector's settings are left as the server has them: the server is shared with other extensions.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_imported = False


def ensure_mlflow() -> None:
    """Import MLflow's client and SQL store once per process, one thread at a time."""
    global _imported
    if _imported:
        return
    with _lock:
        if not _imported:
            import mlflow.store.tracking.sqlalchemy_store
            import mlflow.tracking  # noqa: F401

            _imported = True
