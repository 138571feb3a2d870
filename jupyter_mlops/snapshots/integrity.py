"""The parts of a manifest its id does not cover, checked against the parts it does.

A snapshot id hashes the manifest's ``content`` (column names, type labels, cells, pandas
metadata). The Arrow ``schema`` load rebuilds the frame with, and the per-column details (labels,
types, bytes, stats) that list and diff show, sit beside it; they are re-derived here from the
hashed content and from the verified cells, so an altered schema or altered stats is corruption
that load and verify name, not a frame that breaks or silently differs.
"""

from __future__ import annotations

import base64
import json
import math
from typing import TYPE_CHECKING, Any

from .chunking import chunk_lengths
from .hashing import READABLE_FORMATS, type_label
from .stats import column_stats

if TYPE_CHECKING:
    import pyarrow as pa


def stored_schema(manifest: dict[str, Any]) -> pa.Schema:
    import pyarrow as pa

    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(manifest["schema"])))


def schema_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with a dataframe manifest's schema, given its (verified) content."""
    import pyarrow as pa

    content = manifest["content"]
    if content.get("format") not in READABLE_FORMATS:
        return (
            f"it has format {content.get('format')!r}; this jupyter-mlops reads {READABLE_FORMATS}"
        )
    problem = chunks_problem(content)
    if problem:
        return problem
    try:
        schema = stored_schema(manifest)
    except (KeyError, TypeError, ValueError, pa.ArrowException) as exc:
        return f"its schema is unreadable ({str(exc)[:80]})"
    names = [c["name"] for c in content["columns"]]
    if schema.names != names:
        return f"its schema has columns {schema.names}, its content {names}"
    for field, column in zip(schema, content["columns"], strict=True):
        if type_label(field.type) != column["type"] or field.metadata:
            return (
                f"its schema types column {field.name!r} as {field.type}, "
                f"its content as {column['type']}"
            )
    metadata = dict(schema.metadata or {})
    pandas = metadata.pop(b"pandas", b"{}")
    try:
        same = not metadata and json.loads(pandas) == content["pandas"]
    except ValueError:
        same = False
    if not same:
        return "its schema's pandas metadata differs from its content's"
    details = [c.get("name") for c in manifest.get("columns", [])]
    if details != names:
        return f"its column details name {details}, its content {names}"
    return None


def chunks_problem(content: dict[str, Any]) -> str | None:
    """Do the row chunks add up to the rows, and does every column have one cell per chunk?"""
    try:
        lengths = chunk_lengths(content)
    except (KeyError, TypeError, ValueError) as exc:
        return f"its row chunks are unreadable ({str(exc)[:80]})"
    if not content["columns"]:
        return None  # Arrow carries no rows without columns: the count is the frame's own
    if sum(lengths) != content.get("rows") or any(n <= 0 for n in lengths):
        return f"its row chunks hold {sum(lengths)} rows, its content says {content.get('rows')}"
    for column in content["columns"]:
        if len(column["cells"]) != len(lengths):
            return (
                f"column {column['name']!r} has {len(column['cells'])} cells "
                f"for {len(lengths)} row chunks"
            )
    return None


def cell_type_problem(field: pa.Field, column: pa.ChunkedArray) -> str | None:
    if column.type != field.type:
        return f"its schema types column {field.name!r} as {field.type}, its cells as {column.type}"
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def details_problem(
    manifest: dict[str, Any], index: int, values: pa.ChunkedArray, stored_bytes: int
) -> str | None:
    """What is wrong with one column's details (label, types, bytes, stats), re-derived."""
    content = manifest["content"]
    entry = manifest["columns"][index]
    field = content["columns"][index]["name"]
    pandas_columns = content["pandas"].get("columns", [])
    labels = {c["field_name"]: c["name"] for c in pandas_columns}
    index_fields = {c for c in content["pandas"].get("index_columns", []) if isinstance(c, str)}
    if entry.get("label") != labels.get(field, field) or entry.get("index") != (
        field in index_fields
    ):
        return f"its details label column {field!r} wrongly"
    if entry.get("arrow_type") != str(values.type):
        return f"its details type column {field!r} as {entry.get('arrow_type')}, not {values.type}"
    if entry.get("bytes") != stored_bytes:
        return f"its details give column {field!r} {entry.get('bytes')} bytes, not {stored_bytes}"
    stats = column_stats(values)
    recorded = entry.get("stats") or {}
    for name in sorted(set(stats) | set(recorded)):
        if not _same(recorded.get(name), stats.get(name)):
            return (
                f"its stats of column {field!r} say {name}={recorded.get(name)!r}, "
                f"the data {stats.get(name)!r}"
            )
    return None
