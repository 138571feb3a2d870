"""``mlops.log``: metric values buffered in memory and written to MLflow in batches.

A synchronous ``log_metric`` against SQLite manages 50-280 calls/s (one fsync each), so a
training loop that logs every step would wait on the disk. Here a call checks its input against
MLflow's own rules (a bad key or step is refused at the call, never poisoning the values around
it) and appends a tuple; one background thread hands the values to ``log_batch`` in chunks, and
:meth:`MetricLogger.close` waits until it has written everything. Only that thread writes, so an
interrupt (Ctrl-C, SIGTERM from a kernel shutdown) never cuts a write in half: it is noted, and
the values logged before it are still written. The buffer is bounded: when it is full, the
caller waits for the writer (back-pressure) instead of growing memory.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MLOpsError, MLOpsUsageError
from . import remote
from .spill import spill
from .store import say

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

BATCH_SIZE = 1000  # MLflow's limit of metrics per log_batch request
MAX_PENDING = 100_000  # about 12 MB; a burst larger than this waits for the store
WAKE_AT = 5 * BATCH_SIZE  # start writing before the next tick
FLUSH_INTERVAL_S = 0.5
HISTORY_POINTS = 400  # points kept per metric for the live chart (older ones thinned)
RETRIES = 5
PROGRESS_AFTER_S = 1.0  # a longer final flush says what it is doing
PROGRESS_EVERY_S = 5.0
SPILL_WAIT_S = 2.0  # for the chunk being written when a SIGTERM arrives
STEP_MIN, STEP_MAX = -(2**63), 2**63 - 1  # MLflow stores steps as 64-bit integers
MAX_KEY_LENGTH = 250

Pending = tuple[str, float, int, int]  # key, value, timestamp ms, step


class MetricRefused(MLOpsUsageError):
    """``mlops.log`` was given a metric MLflow would refuse (bad key, value or step)."""


def check_key(key: str) -> None:
    """MLflow's own rules for a metric name, as a one-line usage error."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_metric_name

    if len(key) > MAX_KEY_LENGTH:
        raise MetricRefused(
            f"mlops.log: metric name {key[:40]!r}... is {len(key)} characters; MLflow allows "
            f"at most {MAX_KEY_LENGTH}: use a shorter name"
        )
    try:
        _validate_metric_name(key)
    except MlflowException:
        raise MetricRefused(
            f"mlops.log: metric name {key!r} is not valid in MLflow; use letters, digits, "
            "'_', '-', '.', ' ', ':' and '/' (not a path like '../x' or '/x')"
        ) from None


def check_step(step: Any) -> int:
    if type(step) is not int:
        try:
            if isinstance(step, (bool, float, str)):
                raise TypeError
            step = int(step.__index__())  # numpy and torch integers
        except (AttributeError, TypeError, ValueError):
            raise MetricRefused(
                f"mlops.log: step={step!r} is not an integer; pass step=<int> or leave it out"
            ) from None
    if not STEP_MIN <= step <= STEP_MAX:
        raise MetricRefused(
            f"mlops.log: step={step} does not fit in 64 bits; MLflow stores steps between "
            f"{STEP_MIN} and {STEP_MAX}"
        )
    return step


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
        spill_folder: Path | None = None,
        tracking_uri: str = "",
    ) -> None:
        self.client = client
        self.tracking_uri = tracking_uri  # a remote server's calls are bounded in time
        self.spill_folder = spill_folder  # where a SIGTERM leaves what is not yet written
        self.run_id = run_id
        self.max_pending = max_pending
        self.interval = interval
        self.next_step: dict[str, int] = dict(first_steps or {})
        self.series: dict[str, MetricSeries] = {}
        self.written = 0
        self.interrupted = False  # a Ctrl-C arrived while close() waited for the writer
        self.terminated = False  # so did a SIGTERM (re-raised by the caller once the run ended)
        self.on_log: Callable[[], None] | None = None  # the live view; called from log()
        self._keys: set[str] = set()  # names already checked against MLflow's rules
        self._pending: list[Pending] = []
        self._in_flight = 0  # values the writer has taken and not yet written
        self._lock = threading.Lock()  # guards _pending and next_step
        self._drained = threading.Condition(self._lock)  # the writer took a batch
        self._series_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._stop = False  # the writer returns after its current chunk
        # Set when the writer returns. Waited on instead of Thread.join: an interrupted join
        # can leave is_alive() False while the thread still runs (seen on CPython 3.11).
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"mlops-metrics-{run_id[:8]}", daemon=True
        )
        self._thread.start()

    def log(self, step: int | None, metrics: Mapping[str, Any]) -> None:
        if self._closed:
            raise MLOpsUsageError("this run has ended; log inside a %%track cell or mlops.track()")
        now = int(time.time() * 1000)
        if step is not None:
            step = check_step(step)
        rows = []
        for key, value in metrics.items():
            if key not in self._keys:
                check_key(key)
                self._keys.add(key)
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise MetricRefused(
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
            if pending >= self.max_pending:
                self._wake.set()
                while len(self._pending) >= self.max_pending and not self._done.is_set():
                    self._drained.wait(1.0)
        if pending >= WAKE_AT and not self._wake.is_set():
            self._wake.set()
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

    def close(self) -> None:
        """Wait until the writer has written everything logged; raises MLOpsError on loss.

        A Ctrl-C or SIGTERM while waiting is noted (``interrupted``, ``terminated``) and the
        wait goes on; a second Ctrl-C abandons what is left. A remote server that does not
        answer raises :class:`~.remote.TrackingServerUnavailable` at once and keeps the values
        (see :meth:`keep`).
        """
        self._closed = True
        self._wake.set()
        previous = _defer_sigterm(self)
        try:
            self._wait_for_writer()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        with self._lock:
            lost = len(self._pending)
        if lost and isinstance(self._error, remote.TrackingServerUnavailable):
            raise self._error
        if lost:
            raise MLOpsError(
                f"{lost} metric values of run {self.run_id} could not be written to the MLflow "
                f"store ({self._error}); check that the store is reachable and writable"
            )

    def _wait_for_writer(self) -> None:
        started = time.monotonic()
        shown_at = 0.0
        while True:
            try:
                self._done.wait(0.2)
            except KeyboardInterrupt:
                if self.interrupted:
                    raise  # the second one: stop waiting
                self.interrupted = True
                say(
                    f"interrupted: still writing the {self._left():,} metric values logged "
                    "before it (interrupt again to abandon them)"
                )
                continue
            if self._done.is_set():
                break
            if self.terminated and self.spill_folder is not None:
                self._spill()
                return
            waited = time.monotonic() - started
            if waited >= PROGRESS_AFTER_S and waited - shown_at >= PROGRESS_EVERY_S:
                say(f"writing metric values to the MLflow store: {self._left():,} left")
                shown_at = waited or 1e-9
        if shown_at:
            say(f"all metric values written ({time.monotonic() - started:.1f} s)")

    def _spill(self) -> None:
        """Stop the writer after its chunk and keep the rest on disk (see :mod:`.spill`)."""
        self._stop = True
        self._done.wait(SPILL_WAIT_S)
        with self._lock:
            rows, self._pending = self._pending, []
        if rows and self.spill_folder is not None:
            path = spill(self.spill_folder, self.run_id, rows)
            say(f"{len(rows):,} metric values kept in {path}; written at the store's next use")

    def keep(self, end: Mapping[str, object]) -> Path | None:
        """Put what is not written, and how the run ended (``end``), on disk for a replay."""
        with self._lock:
            rows, self._pending = self._pending, []
        if self.spill_folder is None:
            return None
        return spill(self.spill_folder, self.run_id, rows, end)

    def _left(self) -> int:
        with self._lock:
            return len(self._pending) + self._in_flight

    def _run(self) -> None:
        try:
            self._write_until_closed()
        finally:
            self._done.set()

    def _write_until_closed(self) -> None:
        failures = 0
        while True:
            if not self._closed:
                self._wake.wait(self.interval)
                self._wake.clear()
            closing = self._closed
            if self._stop:
                return
            try:
                self._write_pending()
                self._error = None
                failures = 0
            except Exception as exc:  # e.g. the store stayed locked: retried
                self._error = exc
                failures += 1
                gone = isinstance(exc, remote.TrackingServerUnavailable)
                if closing and (failures >= RETRIES or gone):  # a silent server: no retries
                    return
                if closing:
                    time.sleep(0.05 * 2**failures)
            if closing:
                with self._lock:
                    if not self._pending:
                        return

    def _write_pending(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._in_flight = len(batch)
            self._drained.notify_all()
        for start in range(0, len(batch), BATCH_SIZE):
            if self._stop:
                with self._lock:
                    self._pending[:0] = batch[start:]
                    self._in_flight = 0
                return
            try:
                self._write(batch[start : start + BATCH_SIZE])
            except BaseException:
                with self._lock:
                    self._pending[:0] = batch[start:]  # keep order; retried next round
                    self._in_flight = 0
                raise
            self._in_flight = max(0, len(batch) - start - BATCH_SIZE)

    def _write(self, chunk: list[Pending]) -> None:
        from mlflow.entities import Metric
        from mlflow.exceptions import MlflowException

        metrics = [Metric(k, v, ts, s) for k, v, ts, s in chunk]
        try:
            with remote.bounded(self.tracking_uri):
                self.client.log_batch(self.run_id, metrics=metrics, synchronous=True)
        except MlflowException as exc:
            if exc.error_code != "INVALID_PARAMETER_VALUE":
                raise
            # Checked at the call, so this is rare: keep every value MLflow accepts.
            for metric in metrics:
                try:
                    self.client.log_batch(self.run_id, metrics=[metric], synchronous=True)
                except MlflowException as one:
                    if one.error_code != "INVALID_PARAMETER_VALUE":
                        raise
        self.written += len(chunk)
        with self._series_lock:
            for k, v, _, s in chunk:
                series = self.series.get(k)
                if series is None:
                    series = self.series[k] = MetricSeries()
                series.add(s, v)


def _defer_sigterm(logger: MetricLogger) -> Any:
    """While the writer finishes, a SIGTERM is noted, not fatal; returns the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def note(signum: int, frame: Any) -> None:
        logger.terminated = True
        say("terminating: writing the metric values logged so far first")

    try:
        return signal.signal(signal.SIGTERM, note)
    except ValueError:  # not the main interpreter
        return None
