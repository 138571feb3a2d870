"""Content-defined row chunks: where a frame is cut into cells, chosen by the rows themselves.

Every row gets a 64-bit hash of its values in the anchor columns (the first ``ANCHORS`` columns
of a type with many distinct values: strings, wide numbers, times), vectorised with NumPy, never
a Python loop per row; a window of the last ``WINDOW`` row hashes is mixed into one number, and a
row whose window number falls below a threshold ends a chunk, as long as the chunk has
``min_rows`` rows; a chunk that reaches ``max_rows`` is cut there. An edit therefore moves only
the boundaries near it: an append, an insert or a delete of k% of the rows rewrites about k% of
the cells plus a few. Anchoring on a few columns keeps boundaries in place when other columns
are added, dropped or updated, so such an edit rewrites only that column's cells.

The cuts depend only on row content, never on how the source was split into batches, so the
same rows give the same cells (and the same snapshot id) from pandas, Parquet, Arrow or polars.
Row hashes only place boundaries; a cell's id is still the BLAKE3 hash of its values.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

WINDOW = 8  # rows whose hashes decide one boundary
TARGET_CHUNK_BYTES = 2 << 20  # in-memory Arrow bytes of an average row chunk (all columns)
MIN_AVG_ROWS, MAX_AVG_ROWS = 1 << 10, 1 << 17
ANCHORS = 2
SPREAD = 4  # min = avg / SPREAD, max = avg * SPREAD
# Names the row hash, window, normalisation and anchors; recorded in every manifest.
ROW_HASH = "splitmix64-rows/w8/anchors2"
HASH_BLOCK_ROWS = 1 << 14  # rows hashed at a time (a layout choice: boundaries do not depend on it)


@dataclass(frozen=True)
class Chunking:
    """Bounds of a row chunk, in rows; ``avg_rows`` is what the boundary threshold aims at."""

    min_rows: int
    avg_rows: int
    max_rows: int

    @classmethod
    def around(cls, avg_rows: int) -> Chunking:
        avg = max(1, int(avg_rows))
        return cls(max(1, avg // SPREAD), avg, avg * SPREAD)

    @classmethod
    def for_schema(cls, schema: pa.Schema) -> Chunking:
        """Bounds from the schema alone (never the data), so a re-snapshot cuts the same way."""
        row_bytes = max(1, sum(_estimated_width(field.type) for field in schema))
        avg = 1 << round(math.log2(TARGET_CHUNK_BYTES / row_bytes))
        return cls.around(min(MAX_AVG_ROWS, max(MIN_AVG_ROWS, avg)))

    def describe(self, schema: pa.Schema) -> dict[str, Any]:
        return {
            "min_rows": self.min_rows,
            "avg_rows": self.avg_rows,
            "max_rows": self.max_rows,
            "row_hash": ROW_HASH,
            "anchors": anchor_columns(schema),
        }


def _estimated_width(t: pa.DataType) -> int:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return 4
    if pa.types.is_boolean(t):
        return 1
    try:
        return max(1, int(t.bit_width) // 8)
    except ValueError:
        return 16  # strings, lists, structs: a guess that only sets the chunk size


# --- row hashes ---------------------------------------------------------------------------------

_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_GOLDEN = 0x9E3779B97F4A7C15
_NULL = 0x6A09E667F3BCC909


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array (wrapping arithmetic)."""
    import numpy as np

    x ^= x >> np.uint64(30)
    x *= np.uint64(_M1)
    x ^= x >> np.uint64(27)
    x *= np.uint64(_M2)
    x ^= x >> np.uint64(31)
    return x


def _combine(h: np.ndarray, values: np.ndarray) -> np.ndarray:
    import numpy as np

    h *= np.uint64(_GOLDEN)
    h += values
    return _mix(h)


def _fixed_width(chunk: pa.Array, width: int) -> np.ndarray:
    import numpy as np

    start = chunk.offset * width
    raw = np.frombuffer(chunk.buffers()[1], np.uint8, len(chunk) * width, start)
    if width in (1, 2, 4, 8):
        return raw.view(f"<u{width}").astype(np.uint64)
    padded = np.zeros((len(chunk), -(-width // 8) * 8), np.uint8)
    padded[:, :width] = raw.reshape(len(chunk), width)
    words = padded.view("<u8")
    h = np.zeros(len(chunk), np.uint64)
    for i in range(words.shape[1]):
        h = _combine(h, words[:, i].copy())
    return h


def _var_width(chunk: pa.Array) -> np.ndarray:
    """A hash of each value's bytes: mixed (byte, position) pairs summed per row by cumsum."""
    import numpy as np
    import pyarrow as pa

    large = pa.types.is_large_string(chunk.type) or pa.types.is_large_binary(chunk.type)
    offsets = np.frombuffer(chunk.buffers()[1], np.int64 if large else np.int32)
    offsets = offsets[chunk.offset : chunk.offset + len(chunk) + 1].astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    lengths = np.diff(offsets)
    data = chunk.buffers()[2]
    if data is None or last == first:
        return _mix(lengths.astype(np.uint64))
    data_bytes = np.frombuffer(data, np.uint8, last - first, first).astype(np.uint64)
    starts = offsets[:-1] - first
    position = np.arange(last - first, dtype=np.int64) - np.repeat(starts, lengths)
    data_bytes |= position.astype(np.uint64) << np.uint64(8)
    sums = np.zeros(last - first + 1, np.uint64)
    np.cumsum(_mix(data_bytes), out=sums[1:])
    per_row = sums[offsets[1:] - first] - sums[starts]
    return _combine(per_row, lengths.astype(np.uint64))


def _values_hash(chunk: pa.Array) -> np.ndarray:
    """One uint64 per value of ``chunk`` (nulls hash alike); types without a cheap hash give 0."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from .hashing import normalised_type

    t = chunk.type
    n = len(chunk)
    if isinstance(t, pa.ExtensionType):
        return _values_hash(chunk.storage)
    if pa.types.is_null(t) or n == 0:
        return np.zeros(n, np.uint64)
    if pa.types.is_dictionary(t):
        codes = chunk.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        h = _values_hash(chunk.dictionary)[codes] if len(chunk.dictionary) else np.zeros(n)
        h = h.astype(np.uint64)
    elif pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        return _values_hash(chunk.cast(normalised_type(t)))
    elif pa.types.is_boolean(t):
        h = chunk.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint64)
    elif (
        pa.types.is_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_string(t)
        or pa.types.is_large_binary(t)
    ):
        h = _var_width(chunk)
    elif pa.types.is_struct(t):
        h = np.zeros(n, np.uint64)
        for i in range(t.num_fields):
            h = _combine(h, _values_hash(chunk.field(i)))
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        h = pc.list_value_length(chunk).fill_null(0).to_numpy(zero_copy_only=False)
        h = h.astype(np.uint64)
    else:
        try:
            bits = int(t.bit_width)
        except ValueError:
            return np.zeros(n, np.uint64)
        if bits % 8:
            return np.zeros(n, np.uint64)
        h = _fixed_width(chunk, bits // 8)
    h = _mix(h.copy() if not h.flags.writeable else h)
    if chunk.null_count:
        valid = pc.is_valid(chunk).to_numpy(zero_copy_only=False)
        h[~valid] = np.uint64(_NULL)
    return h


def _binary_like(t: pa.DataType) -> bool:
    import pyarrow as pa

    kinds = (pa.types.is_string, pa.types.is_binary, pa.types.is_large_string)
    return any(kind(t) for kind in kinds) or bool(pa.types.is_large_binary(t))


def anchor_columns(schema: pa.Schema) -> list[str]:
    """The columns whose values place the boundaries: the first ``ANCHORS`` of a rich type,
    else every column."""
    import pyarrow as pa

    def rich(t: pa.DataType) -> bool:
        if _binary_like(t) or pa.types.is_temporal(t) or pa.types.is_decimal(t):
            return True
        return (pa.types.is_integer(t) or pa.types.is_floating(t)) and t.bit_width >= 32

    found = [f.name for f in schema if rich(f.type)][:ANCHORS]
    return found or list(schema.names)


def row_hashes(batch: pa.RecordBatch, columns: list[str]) -> np.ndarray:
    """A 64-bit hash of every row of ``batch``: its values in ``columns``, in that order."""
    import numpy as np

    h = np.zeros(batch.num_rows, np.uint64)
    for name in columns:
        h = _combine(h, _values_hash(batch.column(name)))
    return h


# --- the streaming chunker ----------------------------------------------------------------------


def _window_hashes(tail: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """For each row, a mix of its hash and the ``WINDOW - 1`` before it (``tail`` holds those)."""
    import numpy as np

    joined = np.concatenate([tail, hashes])
    n = len(hashes)
    window = joined[WINDOW - 1 :].copy()
    for k in range(1, WINDOW):
        part = joined[WINDOW - 1 - k : WINDOW - 1 - k + n]
        window ^= (part << np.uint64(8 * k)) | (part >> np.uint64(64 - 8 * k))
    return _mix(window)


class Chunker:
    """Cuts a stream of record batches into content-defined row chunks (tables).

    Holds at most ``max_rows`` rows plus the batch being fed, so any source fits in memory.
    """

    def __init__(self, chunking: Chunking, schema: pa.Schema) -> None:
        import numpy as np

        self.chunking = chunking
        self.schema = schema
        self.anchors = anchor_columns(schema)
        # One threshold, no "normalised" sizes as in FastCDC: the first boundary past min_rows
        # wins, so after an edit the cuts fall back in step at the next boundary (measured: a
        # normalised variant took up to 4 chunks to resynchronise after an insert).
        spacing = max(1, chunking.avg_rows - chunking.min_rows)
        self.threshold = np.uint64(min((1 << 64) - 1, (1 << 64) // spacing))
        self.tail = np.zeros(WINDOW - 1, np.uint64)
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.start = 0  # absolute row where the pending rows begin
        self.candidates: list[int] = []  # absolute cut positions (a chunk ends before them)

    def feed(self, batch: pa.RecordBatch) -> Iterator[pa.Table]:
        import numpy as np

        if batch.num_rows == 0:
            return
        end = self.start + self.pending_rows
        # In blocks that stay in cache: the same hashes (the window carries over in ``tail``),
        # about twice as fast as whole-batch arrays of a million rows (measured).
        for first in range(0, batch.num_rows, HASH_BLOCK_ROWS):
            hashes = row_hashes(batch.slice(first, HASH_BLOCK_ROWS), self.anchors)
            window = _window_hashes(self.tail, hashes)
            self.tail = np.concatenate([self.tail, hashes])[-(WINDOW - 1) :]
            hits = np.flatnonzero(window < self.threshold) + (end + first + 1)
            self.candidates.extend(hits.tolist())
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        yield from self._cut(final=False)

    def finish(self) -> Iterator[pa.Table]:
        yield from self._cut(final=True)

    def _cut(self, *, final: bool) -> Iterator[pa.Table]:
        import bisect

        c = self.chunking
        while self.pending_rows:
            end = self.start + self.pending_rows
            lo, hi = self.start + c.min_rows, self.start + c.max_rows
            i = bisect.bisect_left(self.candidates, lo)
            if i < len(self.candidates) and self.candidates[i] <= min(hi, end):
                cut = self.candidates[i]
            elif end >= hi:
                cut = hi
            elif final:
                cut = end
            else:
                return
            del self.candidates[: bisect.bisect_right(self.candidates, cut)]
            yield self._take(cut - self.start)

    def _take(self, rows: int) -> pa.Table:
        import pyarrow as pa

        taken: list[pa.RecordBatch] = []
        need = rows
        while need:
            batch = self.pending[0]
            if batch.num_rows <= need:
                taken.append(self.pending.pop(0))
                need -= batch.num_rows
            else:
                taken.append(batch.slice(0, need))
                self.pending[0] = batch.slice(need)
                need = 0
        self.start += rows
        self.pending_rows -= rows
        return pa.Table.from_batches(taken, schema=self.schema)


def chunk_lengths(content: dict[str, Any]) -> list[int]:
    """Rows in each row chunk of a frame manifest, for every format.

    Format 1 cut at fixed multiples of ``chunk_rows``; format 2 records each chunk's length.
    """
    if "chunks" in content:
        return [int(n) for n in content["chunks"]]
    rows, size = int(content["rows"]), int(content["chunk_rows"])
    return [min(size, rows - start) for start in range(0, rows, size)]


def chunk_starts(content: dict[str, Any]) -> list[int]:
    """The first row of each chunk, then the row count."""
    starts = [0]
    for n in chunk_lengths(content):
        starts.append(starts[-1] + n)
    return starts
