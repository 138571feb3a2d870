"""One small thread pool per store, so a hung tracking server holds up only its own requests.

A single shared pool let six requests to an unreachable server take every thread, and requests
for a healthy store in another folder waited behind them for a minute. Each tracking URI gets
its own few threads; requests that name no store share one more pool.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

STORE_THREADS = 4

_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def pool_for(store: str) -> ThreadPoolExecutor:
    """The pool of ``store`` (a tracking URI; "" for work that touches no store)."""
    with _lock:
        pool = _pools.get(store)
        if pool is None:
            pool = _pools[store] = ThreadPoolExecutor(
                STORE_THREADS, thread_name_prefix=f"jupyter-mlops-store-{len(_pools)}"
            )
        return pool
