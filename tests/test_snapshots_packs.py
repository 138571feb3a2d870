"""A folder store packs small objects: a save writes a few files, not one per cell.

What is on disk is read with tests/store_files.py (not through the store's code). gc repacks a
pack whose objects are partly dead, and a kill in the middle of that leaves every version whole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.testing import assert_frame_equal

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.snapshots import service
from jupyter_mlops.snapshots.packs import PACK_BYTES, PACKED_MAX
from jupyter_mlops.snapshots.verify import object_ids
from tests.store_files import files, object_location, orphan_packs, stored_objects

PROCESS_TIMEOUT_S = 120


def frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "i": rng.integers(0, 10**9, rows),
            "s": pd.array([f"u{v}" for v in rng.integers(0, 10**6, rows)], dtype="str"),
        }
    )


def live_objects() -> set[str]:
    store = service.open_store(current_settings())
    keys = set()
    for record in store.all_records():
        manifest = store.manifest(record["snapshot"])
        keys |= {f"objects/{o[:2]}/{o[2:]}" for o, _ in object_ids(manifest)}
    return keys


def test_a_save_writes_a_few_packs_not_a_file_per_cell() -> None:
    df = frame(1_000_000)
    snap = mlops.snapshot(df, "big")
    assert snap.objects >= 30  # cells: 3 columns x row chunks
    packs = files("packs")
    # Every cell is in a pack; a pack is written once it holds PACK_BYTES.
    assert files("objects") == set() and stored_objects() == live_objects()
    assert 2 <= len(packs) <= snap.bytes // PACK_BYTES + 1
    assert {p.replace("packs/", "pack-indexes/") + ".json" for p in packs} == files("pack-indexes")
    assert_frame_equal(mlops.load("big"), df)
    assert mlops.verify_snapshots().ok


def test_a_file_larger_than_a_pack_slot_stays_loose(tmp_path: Path) -> None:
    big, small = tmp_path / "big.bin", tmp_path / "small.bin"
    big.write_bytes(os.urandom(PACKED_MAX + 1))
    small.write_bytes(os.urandom(1000))
    for name, path in (("big", big), ("small", small)):
        snap = mlops.snapshot(path, name)
        object_id = service.open_store(current_settings()).manifest(snap.id)["content"]["object"]
        where, _, length = object_location(object_id)
        assert length == path.stat().st_size
        assert where.parent.name == ("packs" if name == "small" else object_id[:2])
        mlops.load(name, to=tmp_path / f"{name}.out")
        assert (tmp_path / f"{name}.out").read_bytes() == path.read_bytes()


KILLED_GC = """
import os, signal
import jupyter_mlops as mlops
from jupyter_mlops.snapshots.store import LocalBackend

real = LocalBackend.delete

def delete(self, key):
    if key.startswith("pack-indexes/"):  # the new pack is indexed; the old one not yet gone
        os.kill(os.getpid(), signal.SIGKILL)
    real(self, key)

LocalBackend.delete = delete
mlops.gc_snapshots()
"""


def test_gc_repacks_a_partly_dead_pack_and_a_kill_midway_loses_nothing(tmp_path: Path) -> None:
    base = frame(30_000)
    mlops.snapshot(base, "data")
    edited = base.assign(x=base.x + 1)  # v2 shares the cells of "i" and "s" with v1
    v2 = mlops.snapshot(edited, "data")
    mlops.remove_snapshot("data@v1")
    script = tmp_path / "gc.py"
    script.write_text(textwrap.dedent(KILLED_GC))
    child = subprocess.run(
        [sys.executable, str(script)], capture_output=True, timeout=PROCESS_TIMEOUT_S
    )
    assert child.returncode == -signal.SIGKILL  # killed between the new pack and the old one
    assert_frame_equal(mlops.load("data"), edited)  # v2 whole, its shared cells in two packs
    assert mlops.verify_snapshots().ok and stored_objects() > live_objects()

    done = mlops.gc_snapshots()  # the re-run finishes the job
    assert stored_objects() == live_objects() and orphan_packs() == set()
    assert done.reclaimed_bytes > 0 and files("tmp") == set()
    assert_frame_equal(mlops.load("data"), edited)
    assert mlops.verify_snapshots().ok and mlops.snapshot(edited, "data").id == v2.id


def test_cells_zstd_cannot_shrink_are_stored_plain_and_load_the_same() -> None:
    """Random floats gain a few percent from zstd at the cost of a full pass: after the first
    cell, such a column's cells are stored uncompressed (bigger than zstd would make them),
    while a compressible column stays compressed; both load back exactly and verify."""
    import pyarrow as pa

    from jupyter_mlops.snapshots.cells import RETRY_EVERY, encode_cell
    from jupyter_mlops.snapshots.save import WORKERS, save

    rows = 400_000
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"noise": rng.random(rows), "steps": np.arange(rows) // 100})
    settings = current_settings()
    store = service.open_store(settings)
    cache = service.stat_cache_path(settings)
    snap = save(store, df, "mixed", stat_cache=cache, chunk_rows=20_000)
    manifest = store.manifest(snap.id)
    sizes = {c["name"]: c["cells"] for c in manifest["content"]["columns"]}
    assert len(sizes["noise"]) > RETRY_EVERY  # some cells past the first, and a retry
    chunks = manifest["content"]["chunks"]
    stored_plain = compressed_cells = 0
    for object_id, count in zip(sizes["noise"], chunks, strict=True):
        _, _, length = object_location(object_id)
        raw = 8 * count
        values = pa.chunked_array([pa.array(rng.random(count))])
        compressed = encode_cell("noise", values).size  # what zstd makes of such a cell
        assert compressed < raw  # zstd does shave a little off random floats
        if length >= raw:
            stored_plain += 1
        else:
            compressed_cells += 1
    # The first cells (one per thread encoding at once), then every RETRY_EVERY-th, try zstd.
    assert 1 <= compressed_cells <= WORKERS + len(chunks) // RETRY_EVERY
    assert stored_plain == len(chunks) - compressed_cells
    for object_id, count in zip(sizes["steps"], chunks, strict=True):
        assert object_location(object_id)[2] < 8 * count / 4  # runs of 100 equal values
    assert_frame_equal(mlops.load("mixed"), df)
    assert mlops.verify_snapshots().ok
