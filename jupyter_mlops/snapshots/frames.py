"""DataFrame <-> Arrow with an exact restore: dtypes, index, column names and ``attrs``.

pyarrow's own pandas metadata restores most dtypes; the few it gets wrong are recorded here and
fixed after ``to_pandas``: python-backed strings, ``ArrowDtype`` columns whose type string pandas
cannot parse back, and a DatetimeIndex ``freq``. Columns Arrow cannot hold are refused by name.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import MLOpsUsageError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

PANDAS_KEY = b"pandas"
# Written by pyarrow into the pandas metadata but not part of the data's identity.
VOLATILE_PANDAS_KEYS = ("pandas_version", "creator")


def _dtype_fix(dtype: Any) -> dict[str, Any] | None:
    import numpy as np
    import pandas as pd

    if isinstance(dtype, pd.StringDtype) and dtype.storage == "python":
        return {"string": "python", "na": "NA" if dtype.na_value is pd.NA else "nan"}
    if isinstance(dtype, pd.ArrowDtype) and not _plain_arrow_dtype(dtype):
        return {"arrow": True}
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        # pyarrow gives object columns back typed (int64, str, datetime64) or with numpy arrays
        # for lists; Python objects come back only through to_pylist.
        return {"object": True}
    return None


def _plain_arrow_dtype(dtype: Any) -> bool:
    """Can pandas parse this ArrowDtype back from its name (as pyarrow's metadata needs)?"""
    import pandas as pd

    try:
        return bool(pd.api.types.pandas_dtype(str(dtype)) == dtype)
    except (TypeError, ValueError):
        return False


ARROW_ERRORS_HINT = "convert it to one type, or pass --allow-pickle (allow_pickle=True)"


def _refuse_duplicates(df: pd.DataFrame) -> None:
    if not df.columns.is_unique:
        dupes = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise MLOpsUsageError(
            f"duplicate column names {', '.join(dupes)}; rename them before snapshotting"
        )


def _arrow_problem(column: pd.Series) -> str | None:
    """Why Arrow cannot hold this column, or None when it can."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(column.dtype, pd.SparseDtype):
        return "is Sparse, which Arrow cannot hold"
    try:
        pa.Table.from_pandas(column.to_frame(), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        reason = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
        return f"(dtype {column.dtype}) cannot be stored as Arrow data: {reason[:100]}"
    return None


def opaque_columns(df: pd.DataFrame, *, allow_pickle: bool) -> list[int]:
    """Positions of the columns Arrow cannot hold; unless pickling is allowed, an error."""
    found = []
    for position in range(df.shape[1]):
        problem = _arrow_problem(df.iloc[:, position])
        if problem is None:
            continue
        if not allow_pickle:
            raise MLOpsUsageError(f"column {df.columns[position]!r} {problem}; {ARROW_ERRORS_HINT}")
        found.append(position)
    return found


class NotArrow(MLOpsUsageError):
    """Some column of the frame cannot be stored as Arrow data (see :func:`opaque_columns`)."""


def to_arrow(df: pd.DataFrame) -> tuple[pa.Table, dict[str, Any]]:
    """The Arrow table of ``df`` and the facts needed to give the same frame back."""
    import pandas as pd
    import pyarrow as pa

    _refuse_duplicates(df)
    if any(isinstance(d, pd.SparseDtype) for d in df.dtypes):
        raise NotArrow("a Sparse column cannot be stored as Arrow data")
    try:
        table = pa.Table.from_pandas(df, preserve_index=None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise NotArrow(f"this DataFrame cannot be stored as Arrow data: {exc}") from None
    fixes: dict[str, Any] = {}
    meta = json.loads(table.schema.metadata[PANDAS_KEY])
    columns = {c["name"]: c for c in meta["columns"]}
    for name, dtype in df.dtypes.items():
        fix = _dtype_fix(dtype)
        field = next(
            (c["field_name"] for c in meta["columns"] if c["name"] == str(name)),
            str(name),
        )
        if fix:
            fixes[field] = fix
            if fix.get("arrow"):
                columns[str(name)]["numpy_type"] = "object"
                columns[str(name)]["pandas_type"] = "object"
    table = _keep_nan_bits(df, table, meta)
    index_fix: dict[str, Any] = {}
    if isinstance(df.index, pd.DatetimeIndex) and df.index.freq is not None:
        index_fix["freq"] = df.index.freqstr
    if not isinstance(df.index, pd.MultiIndex) and df.index.dtype == object:
        index_fix["object"] = True
    for key in VOLATILE_PANDAS_KEYS:
        meta.pop(key, None)
    table = table.replace_schema_metadata({PANDAS_KEY: json.dumps(meta).encode()})
    return table, {"columns": fixes, "index": index_fix}


def _keep_nan_bits(df: pd.DataFrame, table: pa.Table, meta: dict[str, Any]) -> pa.Table:
    """Store NumPy float columns bitwise: ``from_pandas`` turns NaN into null (payload lost)."""
    import numpy as np
    import pyarrow as pa

    fields = {c["name"]: c["field_name"] for c in meta["columns"]}
    for position, (name, dtype) in enumerate(df.dtypes.items()):
        if isinstance(dtype, np.dtype) and dtype.kind == "f":
            field = fields.get(str(name), str(name))
            values = pa.array(df.iloc[:, position].to_numpy(), from_pandas=False)
            i = table.schema.get_field_index(field)
            table = table.set_column(i, table.schema.field(i), values)
    return table


def pandas_metadata(table: pa.Table | pa.Schema) -> dict[str, Any]:
    import pyarrow as pa

    schema = table if isinstance(table, pa.Schema) else table.schema
    raw = (schema.metadata or {}).get(PANDAS_KEY)
    return json.loads(raw) if raw else {}


def to_pandas(table: pa.Table, fixes: dict[str, Any]) -> pd.DataFrame:
    """The DataFrame a snapshot was taken of, dtypes included."""
    import pandas as pd

    df = table.to_pandas()
    column_fixes: dict[str, Any] = fixes.get("columns", {})
    if column_fixes:
        field_of = {c["name"]: c["field_name"] for c in pandas_metadata(table).get("columns", [])}
        for position, name in enumerate(df.columns):
            fix = column_fixes.get(field_of.get(str(name), str(name)))
            if fix is None:
                continue
            values = table.column(field_of.get(str(name), str(name)))
            if fix.get("arrow"):
                series = pd.Series(pd.arrays.ArrowExtensionArray(values), index=df.index)
            elif fix.get("object"):
                series = pd.Series(values.to_pylist(), dtype=object, index=df.index)
            else:
                na_value = pd.NA if fix["na"] == "NA" else float("nan")
                dtype = pd.StringDtype(fix["string"], na_value=na_value)
                series = df.iloc[:, position].astype(dtype)
            df.isetitem(position, series)
    if fixes.get("index", {}).get("object") and df.index.dtype != object:
        df.index = pd.Index(df.index.to_list(), dtype=object, name=df.index.name)
    freq = fixes.get("index", {}).get("freq")
    if freq:
        df.index = pd.DatetimeIndex(df.index, freq=freq)
    return df
