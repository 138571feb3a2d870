"""Every kind of source round-trips through the one streamed path, in bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import jupyter_mlops as mlops


def table(rows: int = 20_000) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            "x": rng.normal(size=rows),
            "s": [f"v{i % 977}" for i in range(rows)],
        }
    )


def test_arrow_table_reader_and_polars_frames_round_trip() -> None:
    t = table()
    snap = mlops.snapshot(t, "t")
    assert snap.rows == len(t) and mlops.load("t", as_="arrow").equals(t)
    reader = pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=3_000))
    assert mlops.snapshot(reader, "t").id == snap.id  # same rows, any batching: same snapshot
    frame = pl.from_arrow(t)
    assert isinstance(frame, pl.DataFrame)
    assert mlops.snapshot(frame, "t").id == snap.id
    lazy = frame.lazy().filter(pl.col("id") % 2 == 0)
    mlops.snapshot(lazy, "lazy")
    assert mlops.load("lazy", as_="polars").equals(lazy.collect())
    batches = list(mlops.load("t", batches=True))
    assert pa.Table.from_batches(batches).equals(t)


def test_parquet_file_and_folder_round_trip(tmp_path: Path) -> None:
    t = table()
    pq.write_table(t, tmp_path / "one.parquet", row_group_size=4_000)
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(t.slice(0, 8_000), folder / "a.parquet")
    pq.write_table(t.slice(8_000), folder / "b.parquet")
    one = mlops.snapshot(str(tmp_path / "one.parquet"), "pq")
    assert one.kind == "dataframe" and mlops.load("pq", as_="arrow").equals(t)
    parts = mlops.snapshot(str(folder), "pq")
    assert parts.id == one.id and parts.reused  # the same rows, in files or not
    assert pd.testing.assert_frame_equal(mlops.load("pq"), t.to_pandas()) is None


def test_sql_through_duckdb_and_the_magic(ip: Any, tmp_path: Path) -> None:
    import duckdb

    db = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table sales as select range as id, range * 2.5 as amount from range(5000)")
    con.close()
    ip.run_line_magic("load_ext", "jupyter_mlops")
    snap = ip.run_line_magic(
        "snapshot", f'--sql "select * from sales where id < 1000" --db duckdb://{db} --name sales'
    )
    assert snap.rows == 1000
    back = ip.run_line_magic("snapshot", "load sales --as polars")
    assert isinstance(back, pl.DataFrame) and back["amount"].sum() == 2.5 * sum(range(1000))
    with pytest.raises(mlops.MLOpsUsageError, match="no SQL driver"):
        mlops.snapshot(None, "x", sql="select 1", db="oracle://db")


LIMITED = textwrap.dedent(
    """
    import resource, sys
    import numpy, pandas, polars, pyarrow, pyarrow.parquet
    import jupyter_mlops as mlops
    from jupyter_mlops.snapshots import cells, chunking, load, save, sources
    def address_space():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize"):
                return int(line.split()[1]) * 1024
    limit = address_space() + int(sys.argv[2])  # the imports, and then this much more
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    snap = mlops.snapshot(sys.argv[1], "big")
    rows = sum(b.num_rows for b in mlops.load("big", batches=True))
    print(snap.rows, rows, flush=True)
    """
)


def test_a_parquet_file_larger_than_the_memory_limit_streams_in_and_out(tmp_path: Path) -> None:
    rows, columns, group = 6_000_000, 8, 100_000
    path = tmp_path / "big.parquet"
    rng = np.random.default_rng(1)
    schema = pa.schema([(f"c{i}", pa.float64()) for i in range(columns)])
    with pq.ParquetWriter(path, schema) as writer:
        for _ in range(rows // group):
            writer.write_table(pa.table({f"c{i}": rng.random(group) for i in range(columns)}))
    in_memory = rows * columns * 8  # 384 MB as an Arrow table
    headroom = 180 << 20  # address space allowed past the imports: under half of that
    assert in_memory > 2 * headroom
    done = subprocess.run(
        [sys.executable, "-c", LIMITED, str(path), str(headroom)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path.cwd(),
        # Address space, not only resident memory, counts: glibc's 64 MB arena per thread and
        # Arrow's jemalloc reservations would use the limit up without touching memory.
        env={**os.environ, "MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(rows), str(rows)]
