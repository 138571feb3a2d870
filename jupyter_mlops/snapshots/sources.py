"""Everything a snapshot can be taken of, as one stream of Arrow record batches.

A pandas frame, an Arrow table or record-batch reader, a polars DataFrame or LazyFrame, a Parquet
file, folder or URL (``pyarrow.dataset``), or the result of a SQL query: each becomes a
:class:`Source` (a schema plus an iterator of batches of bounded size), and the one write path
in :mod:`.save` consumes it. Only the pandas frame is in memory already; the others are read a
batch at a time. Kinds are recognised by the registered readers in ``SOURCES`` (first match
wins) and SQL drivers by URL scheme in ``SQL_DRIVERS``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import is_url
from ..errors import MLOpsUsageError
from .frames import PANDAS_KEY, VOLATILE_PANDAS_KEYS

if TYPE_CHECKING:
    import pyarrow as pa

BATCH_ROWS = 1 << 16  # rows per batch read from a streamed source
PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")


@dataclass
class Source:
    """A schema and the batches that follow it; ``restore`` is how pandas gets exact dtypes."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    kind: str  # what it was: pandas, arrow, polars, parquet, sql
    restore: dict[str, Any] = field(default_factory=lambda: {"columns": {}, "index": {}})
    nbytes: int | None = None  # expected in-memory size, for progress; None when unknown
    opaque_positions: list[int] = field(default_factory=list)
    # The whole table when the source is one in memory already (pandas, Arrow, polars frames):
    # a re-snapshot of it can be recognised by its fingerprint (see :mod:`.fingerprints`).
    table: pa.Table | None = None


def clean_schema(schema: pa.Schema, keep_pandas: bool = True) -> pa.Schema:
    """Only what identity needs: no field metadata, only pandas metadata without its versions."""
    import pyarrow as pa

    fields = [f.remove_metadata() for f in schema]
    metadata = {}
    raw = (schema.metadata or {}).get(PANDAS_KEY)
    if keep_pandas and raw:
        meta = json.loads(raw)
        for key in VOLATILE_PANDAS_KEYS:
            meta.pop(key, None)
        metadata[PANDAS_KEY] = json.dumps(meta).encode()
    return pa.schema(fields, metadata=metadata or None)


def rebatch(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The batches, at most ``BATCH_ROWS`` rows each, carrying ``schema`` (same fields)."""
    import pyarrow as pa

    for batch in batches:
        if batch.schema.names != schema.names:
            raise MLOpsUsageError(
                f"a batch has columns {batch.schema.names}, the source's schema "
                f"{schema.names}; give batches of one schema"
            )
        for start in range(0, batch.num_rows, BATCH_ROWS):
            part = batch.slice(start, BATCH_ROWS)
            yield pa.RecordBatch.from_arrays(part.columns, schema=schema)


Reader = Callable[[Any], Source | None]
SOURCES: list[tuple[str, Reader]] = []


def source_kind(name: str) -> Callable[[Reader], Reader]:
    def add(reader: Reader) -> Reader:
        SOURCES.append((name, reader))
        return reader

    return add


@source_kind("arrow table")
def _arrow_table(obj: Any) -> Source | None:
    import pyarrow as pa

    if not isinstance(obj, pa.Table | pa.RecordBatch):
        return None
    table = pa.Table.from_batches([obj]) if isinstance(obj, pa.RecordBatch) else obj
    schema = clean_schema(table.schema)
    batches = rebatch(iter(table.to_batches()), schema)
    return Source(schema, batches, "arrow", nbytes=table.nbytes, table=table)


@source_kind("arrow reader")
def _arrow_reader(obj: Any) -> Source | None:
    import pyarrow as pa

    if not isinstance(obj, pa.RecordBatchReader):
        return None
    schema = clean_schema(obj.schema)
    return Source(schema, rebatch(iter(obj), schema), "arrow")


@source_kind("polars")
def _polars(obj: Any) -> Source | None:
    module = type(obj).__module__
    if not module.startswith("polars"):
        return None
    import polars as pl

    compat = pl.CompatLevel.oldest()  # plain and large types, no views
    if isinstance(obj, pl.DataFrame):
        table = obj.to_arrow(compat_level=compat)
        schema = clean_schema(table.schema)
        whole = rebatch(iter(table.to_batches()), schema)
        return Source(schema, whole, "polars", nbytes=table.nbytes, table=table)
    if isinstance(obj, pl.LazyFrame):
        first = obj.head(0).collect().to_arrow(compat_level=compat)
        schema = clean_schema(first.schema)

        def batches() -> Iterator[pa.RecordBatch]:
            for frame in obj.collect_batches(chunk_size=BATCH_ROWS, engine="streaming"):
                yield from frame.to_arrow(compat_level=compat).to_batches()

        return Source(schema, rebatch(batches(), schema), "polars")
    return None


def is_parquet_location(value: Any) -> bool:
    """A Parquet file, a folder holding only Parquet files, or a URL (read as a dataset)."""
    if not isinstance(value, str | os.PathLike):
        return False
    text = os.fspath(value)
    if is_url(text) and not text.startswith("file://"):
        return True
    path = Path(text.removeprefix("file://")).expanduser()
    if path.is_file():
        return path.suffix.lower() in PARQUET_SUFFIXES
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))]
        return bool(files) and all(p.suffix.lower() in PARQUET_SUFFIXES for p in files)
    return False


def parquet_source(location: str) -> Source:
    import pyarrow as pa
    import pyarrow.dataset as ds

    text = os.fspath(location)
    try:
        if is_url(text) and not text.startswith("file://"):
            import fsspec

            fs, path = fsspec.core.url_to_fs(text)
            dataset = ds.dataset(path, format="parquet", filesystem=fs)
        else:
            dataset = ds.dataset(str(Path(text.removeprefix("file://")).expanduser()))
    except (pa.ArrowException, OSError, ValueError, ImportError) as exc:
        raise MLOpsUsageError(f"cannot read Parquet data at {text}: {exc}") from None
    # A folder's pandas metadata describes one file (its index range), not the whole set.
    schema = clean_schema(dataset.schema, keep_pandas=len(dataset.files) == 1)

    def batches() -> Iterator[pa.RecordBatch]:
        # File by file, row group by row group: the dataset scanner reads ahead without bound
        # when the consumer is slower (measured: ~1 GB buffered for a 0.5 GB file).
        import pyarrow.parquet as pq

        try:
            for path in dataset.files:
                with dataset.filesystem.open_input_file(path) as fh:
                    parquet = pq.ParquetFile(fh, pre_buffer=False)
                    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                        if batch.schema != schema:
                            batch = pa.Table.from_batches([batch]).cast(schema).to_batches()[0]
                        yield batch
        except (pa.ArrowException, OSError) as exc:
            raise MLOpsUsageError(f"reading Parquet data at {text} failed: {exc}") from None

    return Source(schema, rebatch(batches(), schema), "parquet")


@source_kind("parquet")
def _parquet(obj: Any) -> Source | None:
    return parquet_source(os.fspath(obj)) if is_parquet_location(obj) else None


# --- SQL ----------------------------------------------------------------------------------------

SqlDriver = Callable[[str, str], "pa.RecordBatchReader"]
SQL_DRIVERS: dict[str, SqlDriver] = {}


def sql_driver(*schemes: str) -> Callable[[SqlDriver], SqlDriver]:
    def add(driver: SqlDriver) -> SqlDriver:
        for scheme in schemes:
            SQL_DRIVERS[scheme] = driver
        return driver

    return add


@sql_driver("duckdb", "")
def _duckdb(query: str, db: str) -> pa.RecordBatchReader:
    """DuckDB: ``duckdb:///path.db``, a plain path, or ``duckdb://:memory:``."""
    import duckdb

    target = db.split("://", 1)[1] if "://" in db else db
    target = target or ":memory:"
    if target != ":memory:" and not Path(target).expanduser().exists():
        raise MLOpsUsageError(f"no DuckDB database at {target}; give an existing file")
    try:
        con = duckdb.connect(
            target if target == ":memory:" else str(Path(target).expanduser()),
            read_only=target != ":memory:",
        )
        return con.sql(query).to_arrow_reader(BATCH_ROWS)
    except duckdb.Error as exc:
        raise MLOpsUsageError(f"the query failed in DuckDB: {str(exc).splitlines()[0]}") from None


def sql_source(query: str, db: str) -> Source:
    scheme = db.split("://", 1)[0] if "://" in db else ""
    driver = SQL_DRIVERS.get(scheme)
    if driver is None:
        known = ", ".join(sorted(s + "://" for s in SQL_DRIVERS if s))
        raise MLOpsUsageError(f"no SQL driver for {db!r}; use {known} or a database file path")
    reader = driver(query, db)
    schema = clean_schema(reader.schema, keep_pandas=False)
    return Source(schema, rebatch(iter(reader), schema), "sql")


def open_source(obj: Any) -> Source | None:
    """The source ``obj`` is, or None when no registered reader knows it."""
    for _name, reader in SOURCES:
        source = reader(obj)
        if source is not None:
            return source
    return None
