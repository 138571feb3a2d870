"""Canonical content ids: BLAKE3 over normalised Arrow data, one id per column x row chunk.

The id of a cell depends only on the column's name, its normalised type and its values, never on
the pandas version, the Arrow chunk layout, the bytes under nulls or the file format the cell is
stored in. Every column is hashed as a few named streams (validity, values, lengths, bytes,
dictionary) that are fed chunk by chunk; BLAKE3 is a streaming hash, so feeding one chunk or
twenty gives the same digest. Floats are hashed bitwise: -0.0 and NaN payloads are kept apart,
because a restore must give them back exactly.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from blake3 import blake3

if TYPE_CHECKING:
    import pyarrow as pa

# Manifest format: 1 cut frames at fixed multiples of 2^20 rows, 2 at content-defined rows.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
PATH_FORMAT = 1  # file and folder manifests (unchanged)
STORE_FORMAT = 1  # the folder layout (FORMAT file), unchanged by the manifest format
CELL_ID_VERSION = 1  # part of every cell id: equal values keep equal ids across formats
HASH_NAME = "blake3"


def digest_bytes(data: bytes | memoryview) -> str:
    return blake3(data).hexdigest()


def digest_json(value: Any) -> str:
    """The id of a JSON-able value: BLAKE3 of its canonical (sorted, compact) JSON."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return blake3(text.encode()).hexdigest()


def digest_file(path: str) -> str:
    hasher = blake3(max_threads=blake3.AUTO)
    hasher.update_mmap(path)
    return hasher.hexdigest()


def normalised_type(arrow_type: pa.DataType) -> pa.DataType:
    """The type a column is hashed (and stored) as: offset widths and views are layout, not data."""
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.list_(t.value_field.with_type(normalised_type(t.value_type)))
    if pa.types.is_dictionary(t):
        return pa.dictionary(pa.int32(), normalised_type(t.value_type), t.ordered)
    return t


def type_label(arrow_type: pa.DataType) -> str:
    """A stable text form of the normalised type (dictionary index width left out)."""
    import pyarrow as pa

    t = normalised_type(arrow_type)
    if pa.types.is_dictionary(t):
        return f"dictionary<{type_label(t.value_type)}, ordered={int(t.ordered)}>"
    if isinstance(t, pa.ExtensionType):
        return f"extension<{t.extension_name}, {type_label(t.storage_type)}>"
    return str(t)


class _Streams:
    """Named BLAKE3 streams, combined in name order once every chunk has been fed."""

    def __init__(self) -> None:
        self.hashers: dict[str, Any] = {}

    def feed(self, name: str, data: Any) -> None:
        hasher = self.hashers.get(name)
        if hasher is None:
            hasher = self.hashers[name] = blake3()
        hasher.update(data)

    def combine(self, header: bytes) -> str:
        final = blake3(header)
        for name in sorted(self.hashers):
            final.update(name.encode() + b"\0" + self.hashers[name].digest())
        return final.hexdigest()


def _fixed_width_bytes(chunk: pa.Array) -> Any:
    """The value bytes of a fixed-width chunk, with the bytes under nulls zeroed."""
    import numpy as np
    import pyarrow as pa

    if chunk.null_count:
        try:
            chunk = chunk.fill_null(pa.scalar(0, chunk.type))
        except (pa.ArrowException, TypeError, ValueError):  # decimals, fixed-size binary...
            width = chunk.type.bit_width // 8
            values = np.frombuffer(_value_view(chunk), np.uint8).reshape(len(chunk), width)
            values = values.copy()
            values[~_valid_mask(chunk)] = 0
            return values
    return _value_view(chunk)


def _value_view(chunk: pa.Array) -> memoryview:
    width = chunk.type.bit_width // 8
    start = chunk.offset * width
    return memoryview(chunk.buffers()[1])[start : start + len(chunk) * width]


def _valid_mask(chunk: pa.Array) -> Any:
    import pyarrow.compute as pc

    return pc.is_valid(chunk).to_numpy(zero_copy_only=False)


def _feed_validity(streams: _Streams, path: str, chunks: list[pa.Array], has_nulls: bool) -> None:
    if not has_nulls:
        return
    import numpy as np

    for chunk in chunks:
        streams.feed(path + "/validity", _valid_mask(chunk).view(np.uint8))


def _feed_array(streams: _Streams, path: str, chunks: list[pa.Array]) -> None:
    """Feed one logical array (given as its chunks, in row order) into ``streams``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not chunks:
        return
    t = chunks[0].type
    if isinstance(t, pa.ExtensionType):
        _feed_array(streams, path + "/storage", [c.storage for c in chunks])
        return
    has_nulls = any(c.null_count for c in chunks)
    if pa.types.is_null(t):
        return
    if pa.types.is_dictionary(t):
        _feed_validity(streams, path, chunks, has_nulls)
        # Categories are part of a categorical's identity (unused ones and their order too), so
        # hash the dictionary once and the codes as int32; chunks may carry their own dictionary.
        dictionary = chunks[0].dictionary
        if any(not c.dictionary.equals(dictionary) for c in chunks[1:]):
            unified = pa.chunked_array(chunks).unify_dictionaries()
            chunks, dictionary = list(unified.chunks), unified.chunks[0].dictionary
        _feed_array(streams, path + "/dictionary", [dictionary])
        for chunk in chunks:
            codes = chunk.indices.cast(pa.int32())
            streams.feed(path + "/codes", _fixed_width_bytes(codes))
        return
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t) or pa.types.is_list_view(t):
        chunks = [c.cast(normalised_type(t)) for c in chunks]
        t = chunks[0].type
    _feed_validity(streams, path, chunks, has_nulls)
    if pa.types.is_boolean(t):
        for chunk in chunks:
            values = chunk.fill_null(False).to_numpy(zero_copy_only=False)
            streams.feed(path + "/values", values.view(np.uint8))
    elif pa.types.is_string(t) or pa.types.is_binary(t) or _is_large_binary_like(t):
        offset_type = np.int64 if _is_large_binary_like(t) else np.int32
        for chunk in chunks:
            chunk = pc.drop_null(chunk) if chunk.null_count else chunk
            if not len(chunk):
                continue
            offsets = np.frombuffer(chunk.buffers()[1], offset_type)
            lengths = np.diff(offsets[chunk.offset : chunk.offset + len(chunk) + 1])
            streams.feed(path + "/lengths", lengths.astype(np.int64, copy=False).view(np.uint8))
            first, last = offsets[chunk.offset], offsets[chunk.offset + len(chunk)]
            data = chunk.buffers()[2]
            if data is not None and last > first:
                streams.feed(path + "/bytes", memoryview(data)[first:last])
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        for chunk in chunks:
            item_counts = pc.list_value_length(chunk).cast(pa.int64()).fill_null(0)
            streams.feed(path + "/lengths", _fixed_width_bytes(item_counts))
        _feed_array(streams, path + "/item", [pc.list_flatten(c) for c in chunks])
    elif pa.types.is_struct(t):
        for i in range(t.num_fields):
            name = t.field(i).name
            _feed_array(streams, f"{path}/{i}:{name}", [c.field(i) for c in chunks])
    elif byte_width(t):
        for chunk in chunks:
            streams.feed(path + "/values", _fixed_width_bytes(chunk))
    else:
        from ..errors import MLOpsUsageError

        raise MLOpsUsageError(f"cannot snapshot a column of Arrow type {t}")


def byte_width(t: pa.DataType) -> int:
    """Bytes per value of a fixed-width type; 0 for bit-packed and variable-width types."""
    try:
        bits = int(t.bit_width)
    except ValueError:
        return 0
    return bits // 8 if bits % 8 == 0 else 0


def _is_large_binary_like(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_large_string(t) or pa.types.is_large_binary(t))


def cell_id(name: str, array: pa.ChunkedArray | pa.Array) -> str:
    """The canonical id of one cell: a column's rows as one (possibly chunked) array."""
    import pyarrow as pa

    chunks = list(array.chunks) if isinstance(array, pa.ChunkedArray) else [array]
    streams = _Streams()
    _feed_array(streams, "", [c for c in chunks if len(c)])
    return streams.combine(f"{_header_start(name, array.type)}{len(array)}]".encode())


@functools.lru_cache(maxsize=1024)
def _header_start(name: str, arrow_type: pa.DataType) -> str:
    """The JSON text ``[version,name,type,`` that starts a cell's header (then its length and
    ``]``): the same for every cell of a column, so built once, not per cell."""
    text = json.dumps([CELL_ID_VERSION, name, type_label(arrow_type)], separators=(",", ":"))
    return text[:-1] + ","
