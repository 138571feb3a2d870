"""Cheap per-column summary statistics (pyarrow.compute), for list and diff; never identity."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


def _plain(value: Any) -> Any:
    """A JSON-safe form: numbers stay numbers (NaN/inf become None), the rest becomes text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def column_stats(values: pa.ChunkedArray) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = values.type
    stats: dict[str, Any] = {"nulls": values.null_count}
    if len(values) == values.null_count:
        return stats
    try:
        if pa.types.is_dictionary(t):
            stats["categories"] = len(values.chunk(0).dictionary) if values.num_chunks else 0
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            lengths = pc.min_max(pc.utf8_length(values))
            stats["min_len"], stats["max_len"] = lengths["min"].as_py(), lengths["max"].as_py()
        elif pa.types.is_boolean(t):
            stats["mean"] = _plain(pc.mean(values).as_py())
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            extremes = pc.min_max(values)
            stats["min"], stats["max"] = (
                _plain(extremes["min"].as_py()),
                _plain(extremes["max"].as_py()),
            )
            stats["mean"] = _plain(pc.mean(values).as_py())
            stats["std"] = _plain(pc.stddev(values).as_py())
        elif pa.types.is_temporal(t) or pa.types.is_decimal(t):
            extremes = pc.min_max(values)
            stats["min"], stats["max"] = (
                _plain(extremes["min"].as_py()),
                _plain(extremes["max"].as_py()),
            )
    except (pa.ArrowException, OverflowError, ValueError):
        pass  # stats are a convenience; an odd type simply has fewer of them
    return stats
