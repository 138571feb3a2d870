"""The inference log: every request an endpoint answered, as Parquet partitions in the store.

Layout: ``<home>/traffic/<model>/alias=<alias>/day=<YYYY-MM-DD>/<HHMMSS>-<pid>-<seq>.parquet``,
one file per flush of one writer (a writer per serving process, so files never collide).

Writing (:class:`TrafficWriter`) takes a :class:`Block`: the requests an endpoint answered
together (a micro-batch) kept column-wise, its inputs one frame for all their rows. A block of
numbers (the usual request: a numeric frame in, an array of predictions out) is not kept as it
came: its values are appended as bytes, its ids, times and latencies to flat arrays, of a
:class:`_Segment` that consecutive blocks of the same shape share. So a logged request leaves no
Python object behind but its id string: nothing for the garbage collector to scan again and again
while it waits for the flush, and no pandas objects scattered through memory (measured, that cost
the endpoint more than the writer's own work). Other blocks (text inputs, features, outputs of
another kind) are kept whole. A background thread turns the buffer into an Arrow table and writes
it every ``flush_seconds``.
The buffer is bounded (``max_records``): when the disk cannot keep up, new records are counted
in ``dropped`` instead of growing memory. :meth:`TrafficWriter.close` flushes everything
buffered, so an endpoint stopped with ``%serve stop`` or SIGTERM loses nothing it logged.

The writer needs no server: monitoring tests write synthetic traffic with it directly::

    with TrafficWriter(settings, "churn", alias="prod") as log:
        log.log(inputs=frame, outputs=predictions, version="3", latency_ms=1.5)

Reading (:func:`read_traffic`) returns one DataFrame row per scored input row, columns in this
order: ``request_id`` (str), ``timestamp`` (datetime64 UTC), ``model``, ``version`` (str),
``latency_ms`` (float), ``status`` (int HTTP code), the request's input columns under their own
names, the outputs (``prediction`` for a single output, else ``prediction.<name>``), then the
features the model computed (``feature.<name>``). A request refused before its input was parsed
(status 400) is one row with empty inputs and outputs.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import threading
import time
import uuid
from array import array
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import records
from ..config import Settings
from ..errors import MLOpsUsageError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

FLUSH_SECONDS = 2.0
MAX_RECORDS = 100_000
MAX_LAYOUTS = 64


def traffic_folder(home: Path, model: str, alias: str | None = None) -> Path:
    """Where ``model``'s traffic lives (one alias's when ``alias`` is given)."""
    folder = home / records.TRAFFIC_DIRNAME / model
    if alias is None:
        return folder
    return folder / f"{records.TRAFFIC_ALIAS_PREFIX}{alias or records.TRAFFIC_NO_ALIAS}"


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)


def now_us() -> int:
    """Now, in microseconds since the epoch (the log's timestamp unit)."""
    return time.time_ns() // 1000


def stamp_us(timestamp: dt.datetime) -> int:
    """A datetime (naive means UTC) in microseconds since the epoch."""
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=dt.UTC)
    return (timestamp - EPOCH) // MICROSECOND


@dataclass
class Block:
    """Requests answered together (a micro-batch, or one request), kept column-wise as the
    endpoint had them: per-request lists, and the inputs/outputs of all their rows at once.
    Converted to Arrow at flush time, with no per-row Python work."""

    request_ids: list[str]
    timestamps_us: list[int]
    latencies_ms: list[float]
    statuses: list[int]
    rows: list[int]  # input rows of each request (1 for a request refused unparsed)
    version: str
    inputs: Any = None  # DataFrame (or anything pandas can frame) of every request's rows
    outputs: Any = None  # the model's raw predictions for those rows
    features: Any = None  # DataFrame the model computed from the inputs, if it does

    @property
    def size(self) -> int:
        return len(self.request_ids)


PACKED_KINDS = "biuf"  # numpy kinds of inputs kept as bytes (bool, int, unsigned, float)
PACKED_OUTPUT_KINDS = "biufU"  # and of outputs (labels too)
EXACT_INTEGER = 2**53  # every integer up to this survives the cast to float64


class Packed:
    """A numeric frame as the log needs it: ``to_numpy()``'s values (one dtype for all columns,
    as pandas casts them), the column names and each column's own dtype. ``wide``: a 64-bit
    integer column was cast to float, so only values up to 2**53 pack exactly."""

    __slots__ = ("columns", "dtypes", "values", "wide")

    def __init__(
        self, columns: tuple[Any, ...], dtypes: tuple[Any, ...], values: Any, wide: bool = False
    ) -> None:
        self.columns = columns
        self.dtypes = dtypes
        self.values = values
        self.wide = wide

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)

    def to_numpy(self) -> Any:
        return self.values

    def frame(self) -> pd.DataFrame:
        """The frame it was packed from (each column in its own dtype again)."""
        import pandas as pd

        columns = enumerate(zip(self.columns, self.dtypes, strict=True))
        return pd.DataFrame(
            {name: self.values[:, i].astype(dtype) for i, (name, dtype) in columns},
            columns=list(self.columns),
        )


def packed_inputs(inputs: Any, like: Packed | None = None) -> Packed | None:
    """``inputs`` as :class:`Packed` when it is a non-empty frame of numpy numbers under unique,
    flat column names whose values all survive ``to_numpy``'s common dtype; else None.

    ``like``: a frame of the same columns and dtypes packed before (the caller knows, e.g. the
    endpoint's requests of one key and version): only the values are read (reading the dtypes
    and names costs ~20 us, most of what packing costs)."""
    import numpy as np
    import pandas as pd

    if type(inputs) is not pd.DataFrame:
        return None
    values = inputs.to_numpy()
    if values.dtype.kind not in PACKED_KINDS or not values.shape[0]:
        return None
    if (
        like is not None
        and values.dtype == like.values.dtype
        and values.shape[1] == len(like.columns)
        and not (like.wide and (np.abs(values) > EXACT_INTEGER).any())
    ):
        return Packed(like.columns, like.dtypes, values, like.wide)
    if inputs.columns.nlevels != 1:
        return None
    columns = tuple(inputs.columns)
    if len(set(columns)) != len(columns):
        return None
    dtypes = tuple(inputs.dtypes)
    wide = False
    if any(dtype != values.dtype for dtype in dtypes):  # cast to one dtype: is it exact?
        if not all(isinstance(dtype, np.dtype) for dtype in dtypes):
            return None
        wide = values.dtype.kind == "f" and any(d.kind in "iu" and d.itemsize == 8 for d in dtypes)
        if wide and (np.abs(values) > EXACT_INTEGER).any():
            return None
    return Packed(columns, dtypes, values, wide)


class _Segment:
    """Consecutive packed blocks of one shape (version, input columns and dtypes, outputs'
    dtype and shape): their values appended as bytes, their per-request fields to flat arrays.
    What it holds is invisible to the collector (bytes, arrays, a list of strings)."""

    def __init__(self, key: tuple[Any, ...], version: str, inputs: Packed | None, outputs: Any):
        self.key = key
        self.version = version
        self.like = inputs  # its columns and dtypes are every block's
        self.outputs_dtype = None if outputs is None else outputs.dtype
        self.outputs_shape = None if outputs is None else tuple(outputs.shape[1:])
        self.layout: Hashable | None = None  # the caller's layout key of its frames, if named
        self.types: tuple[type, type] | None = None  # and the types of its inputs and outputs
        self.request_ids: list[str] = []
        self.timestamps_us = array("q")
        self.latencies_ms = array("d")
        self.statuses = array("q")
        self.rows = array("q")
        self.inputs = bytearray()
        self.outputs = bytearray()

    @property
    def size(self) -> int:
        return len(self.request_ids)

    def add(self, block: Block, rows: list[int], inputs: Packed | None, outputs: Any) -> None:
        self.request_ids.extend(block.request_ids)
        self.timestamps_us.extend(block.timestamps_us)
        self.latencies_ms.extend(block.latencies_ms)
        self.statuses.extend(block.statuses)
        self.rows.extend(rows)
        if inputs is not None:
            self.inputs += inputs.values.tobytes()  # row by row (C order), whatever it was
        if outputs is not None:
            self.outputs += outputs.tobytes()

    def fresh(self) -> _Segment:
        """An empty segment of the same shape, layout and frame type."""
        twin = _Segment(self.key, self.version, self.like, None)
        twin.outputs_dtype, twin.outputs_shape = self.outputs_dtype, self.outputs_shape
        twin.layout, twin.types = self.layout, self.types
        return twin

    def append(
        self, request_ids: list[str], stamp: int, latencies_ms: list[float], rows: list[int],
        values: Any, outputs: Any,
    ) -> None:  # fmt: skip
        """:meth:`add` for requests of status 200 answered at ``stamp``, checked by the caller."""
        size = len(request_ids)
        self.request_ids += request_ids
        self.timestamps_us.extend([stamp] * size)
        self.latencies_ms.extend(latencies_ms)
        self.statuses.extend([200] * size)
        self.rows.extend(rows)
        self.inputs += values.tobytes()  # row by row (C order), whatever it was
        self.outputs += outputs.tobytes()

    def block(self) -> Block:
        """The segment as one block (for :func:`blocks_table`)."""
        import numpy as np

        inputs = outputs = None
        like = self.like
        if like is not None:
            values = np.frombuffer(self.inputs, dtype=like.values.dtype)
            values = values.reshape(-1, len(like.columns))
            inputs = Packed(like.columns, like.dtypes, values, like.wide)
        if self.outputs_dtype is not None:
            outputs = np.frombuffer(self.outputs, dtype=self.outputs_dtype)
            outputs = outputs.reshape(-1, *self.outputs_shape)  # type: ignore[misc]
        return Block(
            request_ids=self.request_ids,
            timestamps_us=self.timestamps_us.tolist(),
            latencies_ms=self.latencies_ms.tolist(),
            statuses=self.statuses.tolist(),
            rows=self.rows.tolist(),
            version=self.version,
            inputs=inputs,
            outputs=outputs,
        )


def _packed(
    block: Block, like: Packed | None = None
) -> tuple[tuple[Any, ...], list[int], Packed | None, Any] | None:
    """(segment key, rows per request, packed inputs, outputs) of a block whose inputs and
    outputs are plain numbers (or absent); None for a block to keep whole."""
    import numpy as np

    if block.features is not None:
        return None
    if block.inputs is None:
        inputs, rows = None, [1] * block.size
    else:
        inputs = packed_inputs(block.inputs, like)
        if inputs is None:
            return None
        rows = [inputs.values.shape[0]] if block.size == 1 else block.rows
        if sum(rows) != inputs.values.shape[0]:
            return None
    outputs = block.outputs
    if outputs is not None:
        if (
            type(outputs) is not np.ndarray
            or outputs.dtype.kind not in PACKED_OUTPUT_KINDS
            or outputs.ndim < 1
            or outputs.shape[0] != sum(rows)
            or not outputs.size
        ):
            return None
        outputs = np.ascontiguousarray(outputs)
    key = (
        block.version,
        None if inputs is None else (inputs.columns, inputs.dtypes, inputs.values.dtype),
        None if outputs is None else (outputs.dtype, outputs.shape[1:]),
    )
    return key, rows, inputs, outputs


class TrafficWriter:
    """Buffered, sampled, off-request-path writer of one model alias's inference log.

    ``sample`` (0..1) keeps that share of requests (``%serve --log-sample``); the sampling
    decision is made in :meth:`log`, so an unsampled request costs one ``random()``.
    """

    def __init__(
        self,
        settings: Settings | Path,
        model: str,
        alias: str | None = None,
        *,
        sample: float = 1.0,
        flush_seconds: float = FLUSH_SECONDS,
        max_records: int = MAX_RECORDS,
    ) -> None:
        if not 0.0 <= sample <= 1.0:
            raise MLOpsUsageError(f"log sample {sample} is not a share; give 0..1 (e.g. 0.1)")
        home = settings.home if isinstance(settings, Settings) else Path(settings)
        self.model = model
        self.alias = alias
        self.folder = traffic_folder(home, model, alias or "")  # "" -> the no-alias folder
        self.sample = sample
        self.flush_seconds = flush_seconds
        self.max_records = max_records
        self.written = 0  # rows on disk
        self.dropped = 0  # requests refused because the buffer was full
        self._buffer: list[Block | _Segment] = []
        self._buffered = 0  # requests in the buffer
        self._lock = threading.Lock()  # the buffer: appends (request path) and the swap (flush)
        self._layouts: dict[Hashable, Packed] = {}  # log_rows' layout -> its columns and dtypes
        # The segment the last block of a named layout went to: the next micro-batch of that
        # layout, version and shape is appended to it with a few checks (see _append).
        self._lane: _Segment | None = None
        self._sequence = 0
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._io = threading.Lock()  # one flush at a time (the thread's or close()'s)
        self._thread = threading.Thread(target=self._run, name="mlops-traffic", daemon=True)
        self._thread.start()

    def __enter__(self) -> TrafficWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wants(self) -> bool:
        """Should the next request be logged (the sample)?"""
        return self.sample >= 1.0 or random.random() < self.sample

    def log(
        self,
        *,
        inputs: Any = None,
        outputs: Any = None,
        version: str | int = "",
        latency_ms: float = 0.0,
        status: int = 200,
        features: Any = None,
        request_id: str | None = None,
        timestamp: dt.datetime | None = None,
    ) -> bool:
        """Buffer one exchange; False when the buffer was full (counted in ``dropped``)."""
        return self.log_block(
            Block(
                request_ids=[request_id or uuid.uuid4().hex],
                timestamps_us=[now_us() if timestamp is None else stamp_us(timestamp)],
                latencies_ms=[float(latency_ms)],
                statuses=[int(status)],
                rows=[0],  # counted from the inputs at flush time
                version=str(version),
                inputs=inputs,
                outputs=outputs,
                features=features,
            )
        )

    def log_rows(
        self,
        *,
        request_ids: list[str],
        rows: list[int],
        latencies_ms: list[float],
        version: str,
        inputs: Any,
        outputs: Any,
        layout: Hashable | None = None,
    ) -> bool:
        """Buffer requests answered together (status 200): ``inputs`` holds all their rows,
        ``rows[i]`` of them request ``i``'s, in order, and ``outputs`` one per row. The sample
        is drawn request by request. ``layout``: a key the caller gives every frame of the same
        columns and dtypes (the endpoint: version and request key), so those are read once."""
        if self.sample < 1.0:
            import numpy as np

            keep = [self.wants() for _ in request_ids]
            if not any(keep):
                return True
            if not all(keep):
                mask = np.repeat(np.array(keep), rows)
                request_ids = [r for r, k in zip(request_ids, keep, strict=True) if k]
                latencies_ms = [v for v, k in zip(latencies_ms, keep, strict=True) if k]
                rows = [n for n, k in zip(rows, keep, strict=True) if k]
                inputs = inputs[mask]
                outputs = _masked(outputs, mask)
        if layout is not None:
            appended = self._append(
                request_ids, rows, latencies_ms, version, inputs, outputs, layout
            )
            if appended is not None:
                return appended
        size = len(request_ids)
        return self.log_block(
            Block(
                request_ids=request_ids,
                timestamps_us=[now_us()] * size,
                latencies_ms=latencies_ms,
                statuses=[200] * size,
                rows=rows,
                version=version,
                inputs=inputs,
                outputs=outputs,
            ),
            layout,
        )

    def _append(
        self, request_ids: list[str], rows: list[int], latencies_ms: list[float], version: str,
        inputs: Any, outputs: Any, layout: Hashable,
    ) -> bool | None:  # fmt: skip
        """:meth:`log_rows`'s short way, for the endpoint's usual micro-batch: a frame of the
        layout, version, values dtype and outputs shape of the lane segment (the one the last
        block of this layout went to) is appended to it as bytes, with no block, no packing and
        no key built (those cost the request path ~20 us a call, its code cold between
        requests). None when the call must go the general way (:meth:`log_block`)."""
        segment = self._lane
        if (
            segment is None
            or (type(inputs), type(outputs)) != segment.types
            or segment.version != version
            or segment.layout != layout
        ):
            return None
        like = segment.like
        values = inputs.to_numpy()
        total = values.shape[0]
        if (
            like is None
            or like.wide
            or values.dtype is not like.values.dtype
            or values.shape[1] != len(like.columns)
            or not total
            or outputs.dtype is not segment.outputs_dtype
            or outputs.shape[0] != total
            or outputs.shape[1:] != segment.outputs_shape
            or not outputs.flags.c_contiguous
        ):
            return None
        size = len(request_ids)
        if size == 1:
            rows = [total]
        elif sum(rows) != total:
            return None
        stamp = now_us()
        with self._lock:
            if self._closed.is_set():
                raise MLOpsUsageError("this traffic writer is closed; open a new TrafficWriter")
            if self._buffered + size > self.max_records:
                self.dropped += size
                self._wake.set()
                return False
            if not self._buffer or self._buffer[-1] is not segment:  # flushed, or another shape
                segment = self._lane = segment.fresh()
                self._buffer.append(segment)
            self._buffered += size
            segment.append(request_ids, stamp, latencies_ms, rows, values, outputs)
        return True

    def log_block(self, block: Block, layout: Hashable | None = None) -> bool:
        """Buffer the requests of one block (all or none: False when the buffer was full, the
        block's requests counted in ``dropped``); ``layout`` as for :meth:`log_rows`."""
        if layout is None:
            packed = _packed(block)
        else:
            like = self._layouts.get(layout)
            packed = _packed(block, like)
            seen = None if packed is None else packed[2]
            if seen is not None and (like is None or seen.dtypes is not like.dtypes):
                if len(self._layouts) >= MAX_LAYOUTS:  # keys a client can vary: keep it small
                    self._layouts.clear()
                self._layouts[layout] = seen
        with self._lock:
            if self._closed.is_set():
                raise MLOpsUsageError("this traffic writer is closed; open a new TrafficWriter")
            if self._buffered + block.size > self.max_records:
                self.dropped += block.size
                self._wake.set()
                return False
            self._buffered += block.size
            if packed is None:
                self._buffer.append(block)
                return True
            key, rows, inputs, outputs = packed
            last = self._buffer[-1] if self._buffer else None
            if not isinstance(last, _Segment) or last.key != key:
                last = _Segment(key, block.version, inputs, outputs)
                self._buffer.append(last)
            last.add(block, rows, inputs, outputs)
            if layout is not None and inputs is not None and outputs is not None:
                last.layout, last.types = layout, (type(block.inputs), type(outputs))
                self._lane = last
            return True

    def flush(self) -> int:
        """Write what is buffered now; returns the number of rows written."""
        with self._io:
            with self._lock:
                entries, self._buffer, self._buffered = self._buffer, [], 0
            if not entries:
                return 0
            table = segments_table(entries, self.model)
            if table is None:
                blocks = [e.block() if isinstance(e, _Segment) else e for e in entries]
                table = blocks_table(blocks, self.model)
                del blocks
            stamp = EPOCH + entries[0].timestamps_us[0] * MICROSECOND
            folder = self.folder / f"{records.TRAFFIC_DAY_PREFIX}{stamp:%Y-%m-%d}"
            self._sequence += 1
            name = f"{stamp:%H%M%S}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{self._sequence:06d}"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                _write_parquet(table, folder / f"{name}.parquet")
            except OSError:
                # A full disk (or a folder gone): the batch goes back to the front of the
                # buffer, whole, and the next flush writes it; nothing it held is lost.
                # As blocks: the table may still hold views of a segment's arrays, which must
                # not grow again (the request path appends to a segment in the buffer).
                batch = [e.block() if isinstance(e, _Segment) else e for e in entries]
                with self._lock:
                    self._buffer[:0] = batch
                    self._buffered += sum(block.size for block in batch)
                raise
            self.written += table.num_rows
            return int(table.num_rows)

    def close(self) -> None:
        """Flush everything buffered and stop the background thread (idempotent)."""
        with self._lock:  # a log call after this raises; one before it is in the last flush
            if self._closed.is_set():
                return
            self._closed.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()

    def _run(self) -> None:
        import pyarrow.parquet  # noqa: F401  (loaded now, not during the first flush's traffic)

        while not self._closed.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a full disk must not kill the endpoint; the next flush retries
                # (the batch went back into the buffer: see flush)
                import logging

                logging.getLogger(__name__).exception("writing the inference log failed")


def _masked(outputs: Any, mask: Any) -> Any:
    """The outputs of the rows ``mask`` keeps (None when they cannot be indexed by it)."""
    import numpy as np
    import pandas as pd

    if isinstance(outputs, (np.ndarray, pd.DataFrame, pd.Series)):
        return outputs[mask]
    if isinstance(outputs, list):
        return [o for o, keep in zip(outputs, mask, strict=True) if keep]
    return None


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Write to a temporary name and rename, so a reader never sees half a file."""
    import pyarrow.parquet as pq

    partial = path.with_suffix(".partial")
    pq.write_table(table, partial)
    os.replace(partial, path)


def output_columns(outputs: Any, rows: int) -> dict[str, list[Any]]:
    """The model's raw predictions as ``prediction`` / ``prediction.<name>`` columns; {} when
    they do not have one value per input row (then they are not logged)."""
    import numpy as np
    import pandas as pd

    name = records.TRAFFIC_PREDICTION
    if outputs is None:
        return {}
    if isinstance(outputs, pd.DataFrame):
        if outputs.shape[1] == 1:
            columns = {name: outputs.iloc[:, 0].tolist()}
        else:
            columns = {f"{name}.{c}": outputs[c].tolist() for c in outputs.columns}
    elif isinstance(outputs, pd.Series):
        columns = {name: outputs.tolist()}
    elif isinstance(outputs, dict):
        columns = {f"{name}.{k}": np.asarray(v).tolist() for k, v in outputs.items()}
    else:
        try:
            array = np.asarray(outputs)
        except (ValueError, TypeError):  # ragged outputs no array holds
            return {}
        if array.ndim >= 1 and (len(array) != rows or not array.size):  # none to reshape
            return {}
        if array.ndim == 2 and array.shape[1] > 1:
            columns = {f"{name}.{i}": array[:, i].tolist() for i in range(array.shape[1])}
        elif array.ndim >= 1:
            columns = {name: array.reshape(len(array), -1)[:, 0].tolist()}
        else:
            return {}
    if any(not isinstance(v, list) or len(v) != rows for v in columns.values()):
        return {}
    return columns


def as_frame(value: Any) -> pd.DataFrame | None:
    """A frame-like value (DataFrame, dict of columns, records) as a DataFrame; None when pandas
    cannot frame it (such inputs go unlogged; status and latency still are)."""
    import pandas as pd

    if value is None or isinstance(value, pd.DataFrame):
        return value
    try:
        return pd.DataFrame(value)
    except (ValueError, TypeError):
        return None


def stacked_columns(frames: list[pd.DataFrame | Packed], prefix: str = "") -> dict[str, list[Any]]:
    """Frames of the same columns as one list per column. Frames whose values share one numeric
    dtype (the usual request: MLflow casts it to the model's signature) are stacked as arrays;
    pandas' concat costs ~100 us a frame, and a flush holds thousands."""
    import numpy as np
    import pandas as pd

    names = [f"{prefix}{c}" for c in frames[0].columns]
    arrays = [frame.to_numpy() for frame in frames]
    kinds = {array.dtype for array in arrays}
    if len(kinds) == 1 and next(iter(kinds)).kind in "biuf":
        stacked = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
        return {name: stacked[:, i].tolist() for i, name in enumerate(names)}
    unpacked = [f.frame() if isinstance(f, Packed) else f for f in frames]
    whole = pd.concat(unpacked, ignore_index=True)
    return {name: values.tolist() for name, (_, values) in zip(names, whole.items(), strict=True)}


class _Columns:
    """Columns built row block by row block, missing values padded with None."""

    def __init__(self) -> None:
        self.data: dict[str, list[Any]] = {}
        self.rows = 0

    def add(self, block: dict[str, list[Any]], rows: int) -> None:
        for name, values in block.items():
            column = self.data.get(name)
            if column is None:
                column = self.data[name] = [None] * self.rows
            column.extend(values)
        self.rows += rows
        for column in self.data.values():
            if len(column) < self.rows:
                column.extend([None] * (self.rows - len(column)))


def blocks_table(batch: Iterable[Block], model: str) -> pa.Table:
    """The log rows of a batch of blocks: one per input row, one per unparsed request.

    Blocks are grouped by the columns of their inputs and features (a flush's requests mostly
    share them), so each group's frames are stacked once; a micro-batch is one frame already."""
    import pyarrow as pa

    Member = tuple[Block, Any, Any, list[int]]  # (block, inputs, features, rows per request)
    groups: dict[tuple[Any, Any], list[Member]] = {}
    for block in batch:
        inputs = block.inputs if isinstance(block.inputs, Packed) else as_frame(block.inputs)
        rows = block.rows
        if inputs is not None and inputs.shape[0]:
            if block.size == 1:
                rows = [inputs.shape[0]]
            elif sum(rows) != inputs.shape[0]:  # the caller's counts do not add up: unparsed
                inputs = None
        else:
            inputs = None
        if inputs is None:
            rows = [1] * block.size
        features = as_frame(block.features)
        if features is None or inputs is None or features.shape[0] != inputs.shape[0]:
            features = None
        key = (
            None if inputs is None else tuple(inputs.columns),
            None if features is None else tuple(features.columns),
        )
        groups.setdefault(key, []).append((block, inputs, features, rows))
    columns = _Columns()
    stamps: list[int] = []
    for (input_key, feature_key), members in groups.items():
        fixed: dict[str, list[Any]] = {
            name: []
            for name in (
                records.TRAFFIC_REQUEST_ID,
                records.TRAFFIC_MODEL,
                records.TRAFFIC_VERSION,
                records.TRAFFIC_LATENCY_MS,
                records.TRAFFIC_STATUS,
            )
        }
        outputs = _Columns()
        for block, _, _, rows in members:
            total = sum(rows)
            _repeat(stamps, block.timestamps_us, rows)
            _repeat(fixed[records.TRAFFIC_REQUEST_ID], block.request_ids, rows)
            fixed[records.TRAFFIC_MODEL].extend([model] * total)
            fixed[records.TRAFFIC_VERSION].extend([block.version] * total)
            _repeat(fixed[records.TRAFFIC_LATENCY_MS], block.latencies_ms, rows)
            _repeat(fixed[records.TRAFFIC_STATUS], block.statuses, rows)
            outputs.add(output_columns(block.outputs, total), total)
        group = {**fixed, **outputs.data}
        if input_key is not None:
            stacked = stacked_columns([m[1] for m in members])
            group.update((k, v) for k, v in stacked.items() if k not in group)
        if feature_key is not None:
            prefix = records.TRAFFIC_FEATURE_PREFIX
            group.update(stacked_columns([m[2] for m in members], prefix))
        columns.add(group, len(fixed[records.TRAFFIC_STATUS]))
    arrays = {
        records.TRAFFIC_TIMESTAMP: pa.array(stamps, type=pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        )
    }
    for name, values in columns.data.items():
        try:
            arrays[str(name)] = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types across requests: as text
            arrays[str(name)] = pa.array([v if v is None else str(v) for v in values])
    names = ordered_names(list(arrays))
    return pa.table({name: arrays[name] for name in names})


NUMPY_AS_ARROW = ("float64", "int64", "bool")  # arrays Arrow types as it types their lists


def segments_table(entries: list[Block | _Segment], model: str) -> pa.Table | None:
    """:func:`blocks_table` of a flush of segments only (the endpoint's usual flush), built
    from their arrays with no Python object per row (the general way costs ~1 us a row, in
    the endpoint's process); None when the entries are not all segments of one input layout,
    single-row requests, inputs and 1-D outputs of a dtype in ``NUMPY_AS_ARROW``, and input
    columns that cannot be mistaken for the log's own."""
    import numpy as np
    import pyarrow as pa

    first = entries[0] if entries else None
    if not isinstance(first, _Segment) or first.like is None or first.outputs_dtype is None:
        return None
    like = first.like
    names = [str(c) for c in like.columns]
    if any(
        type(c) is not str
        or c in records.TRAFFIC_FIXED_COLUMNS
        or is_output(c)
        or c.startswith(records.TRAFFIC_FEATURE_PREFIX)
        for c in like.columns
    ):
        return None
    if like.values.dtype.name not in NUMPY_AS_ARROW:
        return None
    if first.outputs_dtype.name not in NUMPY_AS_ARROW or first.outputs_shape != ():
        return None
    segments: list[_Segment] = []
    for entry in entries:
        if (
            not isinstance(entry, _Segment)
            or entry.like is None
            or entry.like.columns != like.columns
            or entry.like.dtypes != like.dtypes
            or entry.like.values.dtype != like.values.dtype
            or entry.outputs_dtype != first.outputs_dtype
            or entry.outputs_shape != ()
            or entry.rows.count(1) != len(entry.rows)
        ):
            return None
        segments.append(entry)

    def joined(field: str, dtype: Any) -> Any:
        parts = [np.frombuffer(getattr(s, field), dtype=dtype) for s in segments]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    values = joined("inputs", like.values.dtype).reshape(-1, len(names))
    request_ids = [r for s in segments for r in s.request_ids]
    total = len(request_ids)
    versions = [v for s in segments for v in [s.version] * s.size]
    arrays = {
        records.TRAFFIC_TIMESTAMP: pa.array(joined("timestamps_us", np.int64)).cast(
            pa.timestamp("us", tz="UTC")
        ),
        records.TRAFFIC_REQUEST_ID: pa.array(request_ids, type=pa.string()),
        records.TRAFFIC_MODEL: pa.array([model] * total, type=pa.string()),
        records.TRAFFIC_VERSION: pa.array(versions, type=pa.string()),
        records.TRAFFIC_LATENCY_MS: pa.array(joined("latencies_ms", np.float64), from_pandas=True),
        records.TRAFFIC_STATUS: pa.array(joined("statuses", np.int64)),
        records.TRAFFIC_PREDICTION: pa.array(
            joined("outputs", first.outputs_dtype), from_pandas=True
        ),
    }
    for i, name in enumerate(names):
        arrays[name] = pa.array(values[:, i], from_pandas=True)
    for name, column in arrays.items():
        if column.null_count == total:  # all NaN: a list of them is typed null, so this is
            arrays[name] = pa.nulls(total)
    return pa.table({name: arrays[name] for name in ordered_names(list(arrays))})


def _repeat(into: list[Any], values: list[Any], rows: list[int]) -> None:
    """Extend ``into`` by each value repeated its request's row count."""
    if rows.count(1) == len(rows):  # one row each (single-row requests): no repeating
        into.extend(values)
        return
    for value, count in zip(values, rows, strict=True):
        into.extend([value] * count)


def ordered_names(names: list[str]) -> list[str]:
    """Fixed columns, then inputs (first seen first), then outputs, then features."""
    fixed = [c for c in records.TRAFFIC_FIXED_COLUMNS if c in names]
    rest = [c for c in names if c not in fixed]
    outputs = [c for c in rest if is_output(c)]
    features = [c for c in rest if c.startswith(records.TRAFFIC_FEATURE_PREFIX)]
    inputs = [c for c in rest if c not in outputs and c not in features]
    return fixed + inputs + outputs + features


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[ordered_names([str(c) for c in frame.columns])]


def is_output(column: str) -> bool:
    name = records.TRAFFIC_PREDICTION
    return column == name or column.startswith(f"{name}.")


def input_columns(frame: pd.DataFrame) -> list[str]:
    """The request's input columns of a traffic frame (neither fixed, output nor feature)."""
    return [
        c
        for c in frame.columns
        if c not in records.TRAFFIC_FIXED_COLUMNS
        and not is_output(c)
        and not c.startswith(records.TRAFFIC_FEATURE_PREFIX)
    ]


def _files(
    alias_dirs: Iterable[Path], since: dt.date | None, until: dt.date | None
) -> Iterator[Path]:
    """The Parquet files of these alias folders whose day partition may hold [since, until]."""
    for alias_dir in alias_dirs:
        if not alias_dir.is_dir():
            continue
        for day_dir in sorted(p for p in alias_dir.iterdir() if p.is_dir()):
            day = dt.date.fromisoformat(day_dir.name.removeprefix(records.TRAFFIC_DAY_PREFIX))
            if (since and day < since) or (until and day > until):
                continue
            yield from sorted(day_dir.glob("*.parquet"))


def _timestamp(value: Any) -> pd.Timestamp | None:
    import pandas as pd

    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        return pd.Timestamp.now(tz="UTC") - value
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def read_traffic(
    settings: Settings,
    model: str,
    alias: str | None = None,
    since: Any = None,
    until: Any = None,
) -> pd.DataFrame:
    """The inference log of ``model`` (one alias's when given), oldest first.

    ``since``/``until``: anything ``pandas.Timestamp`` reads (naive means UTC) or a
    ``datetime.timedelta`` meaning "that long ago". An empty frame (fixed columns only) when
    nothing was logged.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    start, end = _timestamp(since), _timestamp(until)
    if alias is not None:
        alias_dirs = [traffic_folder(settings.home, model, alias)]
    else:
        folder = traffic_folder(settings.home, model)
        alias_dirs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    files = list(_files(alias_dirs, _date(start), _date(end)))
    tables = [pq.read_table(path) for path in files]
    if not tables:
        empty = pd.DataFrame({c: pd.Series(dtype=_EMPTY_TYPES[c]) for c in _EMPTY_TYPES})
        empty[records.TRAFFIC_TIMESTAMP] = pd.Series(dtype="datetime64[ns, UTC]")
        return empty
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    frame = ordered(frame)
    stamps = frame[records.TRAFFIC_TIMESTAMP]
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= stamps >= start
    if end is not None:
        keep &= stamps < end
    frame = frame[keep].sort_values(records.TRAFFIC_TIMESTAMP, kind="stable")
    return frame.reset_index(drop=True)


_EMPTY_TYPES = {
    records.TRAFFIC_REQUEST_ID: "object",
    records.TRAFFIC_TIMESTAMP: "object",
    records.TRAFFIC_MODEL: "object",
    records.TRAFFIC_VERSION: "object",
    records.TRAFFIC_LATENCY_MS: "float64",
    records.TRAFFIC_STATUS: "int64",
}


def _date(stamp: pd.Timestamp | None) -> dt.date | None:
    return None if stamp is None else stamp.date()


def traffic_of(settings: Settings, ref: str, since: Any = None, until: Any = None) -> pd.DataFrame:
    """``mlops.traffic``: the log of ``NAME@ALIAS`` (or every alias of ``NAME``)."""
    from ..registry.models import split_ref

    model, version, alias = split_ref(ref)
    if version is not None:
        raise MLOpsUsageError(
            f"{ref!r}: traffic is logged per alias; write NAME@ALIAS (or NAME for every alias)"
        )
    return read_traffic(settings, model, alias, since=since, until=until)
