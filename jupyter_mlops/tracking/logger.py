"""``mlops.log``: metric values buffered in memory and written to MLflow in batches.

A synchronous ``log_metric`` against SQLite manages 50-280 calls/s (one fsync each), so a
training loop that logs every step would wait on the disk. Here a call only appends a tuple;
a background thread hands the values to ``log_batch`` in chunks, and :meth:`MetricLogger.close`
writes whatever is left when the run ends. The buffer is bounded: when it is full, the caller
writes a batch itself (back-pressure) instead of growing memory.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import MLOpsError, MLOpsUsageError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

BATCH_SIZE = 1000  # MLflow's limit of metrics per log_batch request
MAX_PENDING = 100_000  # about 12 MB; a burst larger than this waits for the store
WAKE_AT = 5 * BATCH_SIZE  # start writing before the next tick
FLUSH_INTERVAL_S = 0.5
HISTORY_POINTS = 400  # points kept per metric for the live chart (older ones thinned)
RETRIES = 5

Pending = tuple[str, float, int, int]  # key, value, timestamp ms, step


@dataclass
class MetricSeries:
    """One metric's history thinned to at most ``HISTORY_POINTS`` samples, for charts."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    count: int = 0
    stride: int = 1
    last_step: int = 0
    last_value: float = math.nan

    def add(self, step: int, value: float) -> None:
        if self.count % self.stride == 0:
            self.steps.append(step)
            self.values.append(value)
            if len(self.steps) > HISTORY_POINTS:
                self.steps, self.values = self.steps[::2], self.values[::2]
                self.stride *= 2
        self.count += 1
        self.last_step, self.last_value = step, value

    def points(self) -> tuple[list[int], list[float]]:
        """The samples plus the newest value, which thinning may have skipped."""
        if self.steps and (self.count - 1) % self.stride != 0:
            return [*self.steps, self.last_step], [*self.values, self.last_value]
        return list(self.steps), list(self.values)


class MetricLogger:
    """Buffers the metrics of one run; safe to call from any thread."""

    def __init__(
        self,
        client: MlflowClient,
        run_id: str,
        *,
        first_steps: Mapping[str, int] | None = None,
        max_pending: int = MAX_PENDING,
        interval: float = FLUSH_INTERVAL_S,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.max_pending = max_pending
        self.interval = interval
        self.next_step: dict[str, int] = dict(first_steps or {})
        self.series: dict[str, MetricSeries] = {}
        self.written = 0
        self.on_log: Callable[[], None] | None = None  # the live view; called from log()
        self._pending: list[Pending] = []
        self._lock = threading.Lock()  # guards _pending and next_step
        self._write_lock = threading.Lock()  # one writer at a time, in order
        self._series_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"mlops-metrics-{run_id[:8]}", daemon=True
        )
        self._thread.start()

    def log(self, step: int | None, metrics: Mapping[str, Any]) -> None:
        if self._closed:
            raise MLOpsUsageError("this run has ended; log inside a %%track cell or mlops.track()")
        now = int(time.time() * 1000)
        rows = []
        for key, value in metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise MLOpsUsageError(
                    f"mlops.log: {key}={value!r} is not a number; log numbers "
                    "(use mlops.log_params for text)"
                ) from None
            rows.append((key, number))
        with self._lock:
            for key, number in rows:
                at = self.next_step.get(key, 0) if step is None else step
                self.next_step[key] = at + 1
                self._pending.append((key, number, now, at))
            pending = len(self._pending)
        if pending >= WAKE_AT and not self._wake.is_set():
            self._wake.set()
        if pending >= self.max_pending:
            self.flush()
        if self.on_log is not None:
            self.on_log()

    def history(self) -> dict[str, MetricSeries]:
        with self._series_lock:
            return {
                k: MetricSeries(
                    list(s.steps), list(s.values), s.count, s.stride, s.last_step, s.last_value
                )
                for k, s in self.series.items()
            }

    def flush(self) -> None:
        """Write every value logged so far (raises if the store keeps refusing them)."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self._write(batch)
            except BaseException:
                with self._lock:
                    self._pending[:0] = batch  # keep order; retried by the next flush
                raise

    def close(self) -> None:
        """Stop the thread and write the rest; raises :class:`MLOpsError` if values are lost."""
        self._closed = True
        self._wake.set()
        self._thread.join()
        last: BaseException | None = self._error
        for attempt in range(RETRIES):
            try:
                self.flush()
                return
            except Exception as exc:
                last = exc
                time.sleep(0.05 * 2**attempt)
        with self._lock:
            lost = len(self._pending)
        raise MLOpsError(
            f"{lost} metric values of run {self.run_id} could not be written to the MLflow "
            f"store ({last}); check that the store is reachable and writable"
        )

    def _write(self, batch: list[Pending]) -> None:
        from mlflow.entities import Metric

        for start in range(0, len(batch), BATCH_SIZE):
            chunk = batch[start : start + BATCH_SIZE]
            metrics = [Metric(k, v, ts, s) for k, v, ts, s in chunk]
            try:
                self.client.log_batch(self.run_id, metrics=metrics, synchronous=True)
            except BaseException:
                # Whatever was not written goes back; the written chunks must not repeat.
                del batch[:start]
                raise
            self.written += len(chunk)
            with self._series_lock:
                for k, v, _, s in chunk:
                    series = self.series.get(k)
                    if series is None:
                        series = self.series[k] = MetricSeries()
                    series.add(s, v)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.flush()
                self._error = None
            except Exception as exc:  # e.g. "database is locked": retried next round
                self._error = exc
