"""``mlops.distributed.run``: one cell on every rank, in the warm pool or as a one-shot job.

The decision path is: check the request (:mod:`.plan`), then run it where it belongs: the
kernel's pool (:mod:`.pool`) while one runs, otherwise a new job folder (:mod:`.oneshot`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from ..config import Settings
from ..context import current_settings, user_namespace
from ..errors import MLOpsUsageError
from . import pool
from .oneshot import run_job
from .plan import JobRequest, check_fits_pool, check_syntax, plan, resolve_push
from .results import DistributedResult

FLAGS = tuple(f.name for f in fields(JobRequest))


def print_line(text: str) -> None:
    print(text, flush=True)


def run(
    source: str,
    request: JobRequest | None = None,
    *,
    sink: Callable[[str], None] = print_line,
    on_status: Callable[[str], None] | None = None,
    settings: Settings | None = None,
    **flags: Any,
) -> DistributedResult:
    """Run ``source`` on every rank under torchrun and return rank 0's pulled names.

    The flags are a :class:`JobRequest` or its fields as keywords (``n=2, push="a,b"``);
    ``push`` names are looked up in the notebook. ``sink`` receives the live log lines,
    ``on_status`` a one-line summary of every rank's state each time it changes (the magic
    shows it in a display that updates in place). While a warm pool runs (``pool.start``), a
    single-node cell runs there unless ``fresh``.
    """
    from ..environment import TORCH_INSTALL, torch_installed
    from ..tracking.active import active_run

    unknown = sorted(set(flags) - set(FLAGS))
    if unknown:
        raise MLOpsUsageError(
            f"distributed.run: no flag {unknown[0]!r}; the flags are {', '.join(FLAGS)}"
        )
    request = replace(request or JobRequest(), **flags)
    if not torch_installed():
        raise MLOpsUsageError(f"%%distributed needs torch, which is not installed: {TORCH_INSTALL}")
    check_syntax(source)
    running_pool = pool.running() if request.may_use_pool else None
    if running_pool is not None:
        check_fits_pool(running_pool.spec, request)
        tracked = active_run()
        return pool.run_in_pool(
            running_pool,
            source,
            resolve_push(request.push, user_namespace()),
            pull=request.pulled,
            pull_explicit=request.pull is not None,
            tracking=(tracked.run_id, tracked.tracking_uri) if tracked else (None, None),
            timeout=request.timeout,
            all_logs=request.all_logs,
            sink=sink,
        )
    spec = plan(request)
    values = resolve_push(request.push, user_namespace())
    tracked = active_run()
    if tracked is not None:
        spec = replace(spec, mlflow_run_id=tracked.run_id, mlflow_tracking_uri=tracked.tracking_uri)
    home = (settings or current_settings()).home
    return run_job(
        home, source, spec, values, all_logs=request.all_logs, sink=sink, on_status=on_status
    )
