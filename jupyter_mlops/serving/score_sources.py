"""What ``%score`` can read, registered by kind: each kind knows both sides of the trip.

In the kernel a source only describes itself (a label for the run's params, the row count when it
is cheap to know) and, for data that lives in the kernel's memory, feeds it to the scoring process
as an Arrow IPC stream on its stdin. In the scoring process the same kind yields the batches. A
snapshot or a Parquet file is read by the scoring process itself: the kernel never loads it.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from ..config import Settings
from ..errors import MLOpsUsageError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


@dataclass(frozen=True)
class Source:
    """One input of a scoring job, as the kernel describes it to the scoring process."""

    kind: str
    label: str  # what the run records as its data: a snapshot REF, a path, "DataFrame"
    rows: int | None  # None: known only once read (a stream)
    columns: tuple[str, ...]  # column names, index levels included
    spec: dict[str, Any] = field(default_factory=dict)  # what the scoring process needs
    feed: Callable[[IO[bytes]], None] | None = None  # writes the data to the process's stdin


class SourceKind(ABC):
    """A kind of input; subclasses register themselves in ``KINDS`` by ``name``."""

    name: ClassVar[str]

    @abstractmethod
    def accepts(self, data: Any) -> bool: ...

    @abstractmethod
    def describe(self, settings: Settings, data: Any) -> Source: ...

    @abstractmethod
    def batches(
        self, settings: Settings, spec: dict[str, Any], stdin: IO[bytes], batch_rows: int
    ) -> Iterator[pd.DataFrame]: ...


KINDS: dict[str, SourceKind] = {}


def register(kind: type[SourceKind]) -> type[SourceKind]:
    KINDS[kind.name] = kind()
    return kind


def describe(settings: Settings, data: Any) -> Source:
    """The source ``data`` is, by the first registered kind that accepts it."""
    for kind in KINDS.values():
        if kind.accepts(data):
            return kind.describe(settings, data)
    raise MLOpsUsageError(
        f"cannot score a {type(data).__name__}; give a DataFrame, an Arrow table or record-batch "
        "reader, a snapshot REF or a Parquet file or folder"
    )


def batches(
    settings: Settings, source: dict[str, Any], stdin: IO[bytes], batch_rows: int
) -> Iterator[pd.DataFrame]:
    """In the scoring process: the frames of the source the kernel described."""
    return KINDS[source["kind"]].batches(settings, source["spec"], stdin, batch_rows)


def named_inputs(schema: Any) -> list[str]:
    """The column names an MLflow input schema asks for ([] when there is none or unnamed)."""
    if schema is None or not schema.has_input_names():
        return []
    return [str(name) for name in schema.input_names()]


def _as_arrow(data: Any) -> Any:
    """A pyarrow Table or RecordBatchReader for in-memory data (pandas, Arrow, polars)."""
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        import pyarrow as pa

        return pa.Table.from_pandas(data)
    polars = sys.modules.get("polars")
    if polars is not None and isinstance(data, polars.DataFrame):
        return data.to_arrow()
    return data


@register
class InMemory(SourceKind):
    """A DataFrame (pandas or polars), an Arrow table or an Arrow record-batch reader."""

    name = "stream"

    def accepts(self, data: Any) -> bool:
        pyarrow = sys.modules.get("pyarrow")
        arrow = pyarrow is not None and isinstance(data, pyarrow.Table | pyarrow.RecordBatchReader)
        return arrow or type(data).__name__ == "DataFrame"

    def describe(self, settings: Settings, data: Any) -> Source:
        import pyarrow as pa

        table = _as_arrow(data)
        if not isinstance(table, pa.Table | pa.RecordBatchReader):
            raise MLOpsUsageError(f"cannot score a {type(data).__name__}; give a pandas DataFrame")
        rows = table.num_rows if isinstance(table, pa.Table) else None

        def feed(stdin: IO[bytes]) -> None:
            with pa.ipc.new_stream(stdin, table.schema) as writer:
                for batch in table.to_batches() if isinstance(table, pa.Table) else table:
                    writer.write_batch(batch)

        columns = tuple(table.schema.names)
        return Source(self.name, type(data).__name__, rows, columns, feed=feed)

    def batches(
        self, settings: Settings, spec: dict[str, Any], stdin: IO[bytes], batch_rows: int
    ) -> Iterator[pd.DataFrame]:
        import pyarrow as pa

        reader = pa.ipc.open_stream(stdin)
        yield from _rebatched(reader, batch_rows)


@register
class SnapshotSource(SourceKind):
    """A snapshot REF (or a ``Snapshot`` a magic returned), streamed by the scorer."""

    name = "snapshot"

    def accepts(self, data: Any) -> bool:
        if isinstance(data, str):
            return not _is_parquet(data)
        return all(hasattr(data, a) for a in ("ref", "id", "version"))

    def describe(self, settings: Settings, data: Any) -> Source:
        from ..snapshots.service import describe, open_store

        found = describe(open_store(settings), data if isinstance(data, str) else data.ref)
        if found.kind != "dataframe":
            raise MLOpsUsageError(
                f"{found.ref} is a {found.kind} snapshot; score a DataFrame snapshot"
            )
        columns = tuple(c.name for c in found.columns)
        return Source(self.name, found.ref, found.rows, columns, spec={"ref": found.ref})

    def batches(
        self, settings: Settings, spec: dict[str, Any], stdin: IO[bytes], batch_rows: int
    ) -> Iterator[pd.DataFrame]:
        from ..snapshots import service

        # Streamed chunk by chunk, each verified; logged as an input of the scoring run.
        yield from _rebatched(service.load(settings, spec["ref"], batches=True), batch_rows)


@register
class ParquetSource(SourceKind):
    """A Parquet file or a folder of them, streamed batch by batch."""

    name = "parquet"

    def accepts(self, data: Any) -> bool:
        return isinstance(data, str | Path) and _is_parquet(str(data))

    def describe(self, settings: Settings, data: Any) -> Source:
        import pyarrow.dataset as ds

        path = Path(data).expanduser().resolve()
        try:
            dataset = ds.dataset(path, format="parquet")
            rows, columns = dataset.count_rows(), tuple(dataset.schema.names)
        except (OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MLOpsUsageError(f"cannot read Parquet at {path}: {first}") from None
        return Source(self.name, str(path), rows, columns, spec={"path": str(path)})

    def batches(
        self, settings: Settings, spec: dict[str, Any], stdin: IO[bytes], batch_rows: int
    ) -> Iterator[pd.DataFrame]:
        import pyarrow.dataset as ds

        dataset = ds.dataset(spec["path"], format="parquet")
        yield from _rebatched(dataset.to_batches(batch_size=batch_rows), batch_rows)


def _is_parquet(text: str) -> bool:
    path = Path(text).expanduser()
    if path.is_file():
        return path.suffix.lower() in (".parquet", ".pq")
    return path.is_dir() and any(path.rglob("*.parquet"))


def _rebatched(batches: Any, batch_rows: int) -> Iterator[pd.DataFrame]:
    """Frames of ``batch_rows`` rows (the last one shorter) from record batches of any size."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= batch_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, batch_rows).to_pandas()
            rest = table.slice(batch_rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending).to_pandas()
