"""The store: versions, dedup, corruption detection, references, names, list, diff, files, gc."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.errors import MLOpsUsageError
from jupyter_mlops.records import SNAPSHOT_PACKS
from jupyter_mlops.snapshots import files, service
from jupyter_mlops.snapshots.repository import object_key
from jupyter_mlops.snapshots.save import save
from tests.store_files import flip_byte, object_location, read_object, stored_objects

STORE = Path(".mlops/snapshots")


def frame(rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "k": np.arange(rows),
            "s": [f"row{i}" for i in range(rows)],
        }
    )


def save_small_chunks(df: pd.DataFrame, name: str, chunk_rows: int = 100) -> mlops.Snapshot:
    settings = current_settings()
    store = service.open_store(settings)
    stat_cache = service.stat_cache_path(settings)
    return save(store, df, name, stat_cache=stat_cache, chunk_rows=chunk_rows)


def test_versions_count_up_and_unchanged_content_writes_nothing() -> None:
    df = frame()
    first = mlops.snapshot(df, "train", tags={"stage": "raw"})
    assert (first.version, first.ref, first.rows, first.columns) == (
        1,
        "train@v1",
        1000,
        ["x", "k", "s"],
    )
    assert first.bytes_written > 0 and first.bytes_written == first.bytes
    again = mlops.snapshot(df.copy(), "train")
    assert (again.version, again.id, again.bytes_written, again.reused) == (1, first.id, 0, True)
    changed = mlops.snapshot(df.assign(x=df.x + 1), "train")
    assert changed.version == 2 and changed.parent == "train@v1" and changed.id != first.id
    assert 0 < changed.bytes_written < first.bytes_written  # k and s were not written again
    assert "train@v2" in repr(changed) and "parent  train@v1" in repr(changed)


def test_appending_rows_writes_only_the_last_chunk_and_the_new_ones() -> None:
    df = frame(1000)
    first = save_small_chunks(df, "grow")
    grown = save_small_chunks(pd.concat([df, frame(10, seed=1)], ignore_index=True), "grow")
    # 1000 rows in content-defined chunks of about 100; 10 more rows rewrite only the last chunk
    # of each column (cut at the end before, grown now; the index is a RangeIndex: metadata).
    assert grown.objects_written <= 2 * 3  # at most the grown chunk and one more, per column
    assert grown.bytes_written < first.bytes_written * 0.5


def test_a_flipped_byte_is_detected_on_load_and_by_verify() -> None:
    snap = mlops.snapshot(frame(), "fragile")
    manifest = service.open_store(current_settings()).manifest(snap.id)
    victim = manifest["content"]["columns"][0]["cells"][0]
    assert object_location(victim)[0].parent.name == SNAPSHOT_PACKS  # a small cell: packed
    before = read_object(victim)
    flip_byte(victim)
    assert read_object(victim) != before
    with pytest.raises(mlops.SnapshotCorrupted) as caught:
        mlops.load("fragile")
    message = str(caught.value)
    assert "fragile@v1" in message and victim[2:] in message and "column 'x'" in message
    report = mlops.verify_snapshots()
    assert not report and len(report.problems) == 1 and victim[2:] in report.problems[0].object
    assert "1 problem(s)" in repr(report)
    assert_frame_equal(
        mlops.load("fragile", verify=False).drop(columns="x"), frame().drop(columns="x")
    )


def test_a_missing_object_and_a_tampered_manifest_are_corruption() -> None:
    snap = mlops.snapshot(frame(), "holes")
    manifest_path = STORE / "manifests" / f"{snap.id}.json"
    text = manifest_path.read_text()
    os.chmod(manifest_path, 0o644)
    manifest_path.write_text(text.replace('"rows": 1000', '"rows": 999'))
    with pytest.raises(mlops.SnapshotCorrupted, match="does not match its id"):
        mlops.load("holes")
    manifest_path.write_text(text)
    cell = service.open_store(current_settings()).manifest(snap.id)["content"]["columns"][1][
        "cells"
    ][0]
    # The cell's bytes are gone: its pack (or its loose file, were it large) is deleted.
    holder = object_location(cell)[0]
    os.chmod(holder, 0o644)
    holder.unlink()
    assert object_key(cell) not in stored_objects()
    with pytest.raises(mlops.SnapshotCorrupted, match="missing"):
        mlops.load("holes@v1")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        "../escape",
        "a/b",
        "a\\b",
        "nul\0byte",
        ".hidden",
        "-flag",
        "with space",
        "x" * 129,
        "a..b",
        "/abs",
        "é",
    ],
)
def test_unsafe_names_are_refused_and_nothing_is_written(name: str) -> None:
    with pytest.raises(MLOpsUsageError, match="invalid snapshot name") as caught:
        mlops.snapshot(frame(10), name)
    assert "\n" not in str(caught.value)
    assert not (STORE / "refs").exists()
    assert not any(Path("..").glob("escape*"))


def test_references_resolve_by_name_version_latest_and_id_prefix() -> None:
    v1 = mlops.snapshot(frame(10), "ref")
    v2 = mlops.snapshot(frame(10, seed=2), "ref")
    assert_frame_equal(mlops.load("ref"), frame(10, seed=2))
    assert_frame_equal(mlops.load("ref@latest"), frame(10, seed=2))
    assert_frame_equal(mlops.load("ref@v1"), frame(10))
    assert_frame_equal(mlops.load(v1.id[:10]), frame(10))
    assert mlops.diff(v1.id[:8], "ref").b == "ref@v2" and v2.version == 2
    for bad, message in [
        ("ref@v3", "has no version v3"),
        ("ref@v0", "bad version"),
        ("ref@best", "bad version"),
        ("missing", "no snapshot named 'missing'"),
        ("deadbeefdeadbeef", "no snapshot name or id starts with"),
        ("a/b", "bad snapshot reference"),
        ("", "missing snapshot reference"),
    ]:
        with pytest.raises(MLOpsUsageError, match=message):
            mlops.load(bad)


def test_list_has_one_row_per_version() -> None:
    mlops.snapshot(frame(10), "a", tags={"k": "v"}, message="first")
    mlops.snapshot(frame(20), "a")
    mlops.snapshot(frame(5), "b")
    listing = mlops.snapshots()
    assert list(listing["ref"]) == ["a@v1", "a@v2", "b@v1"]
    assert list(listing["rows"]) == [10, 20, 5]
    assert listing.loc[0, "tags"] == "k=v" and listing.loc[0, "message"] == "first"
    assert list(mlops.snapshots("b")["ref"]) == ["b@v1"]
    assert mlops.snapshots("nothing").empty


def test_diff_reports_schema_rows_changed_ranges_and_stats() -> None:
    df = frame(1000)
    save_small_chunks(df, "d")
    edited = df.drop(columns="s").assign(new=1, k=df.k.astype("int32"))
    edited.loc[250:260, "x"] = 0.0
    save_small_chunks(edited, "d")
    d = mlops.diff("d@v1", "d@v2")
    assert bool(d) and not d.identical
    kinds = {(c.column, c.change) for c in d.changes}
    assert kinds == {("new", "added"), ("s", "removed"), ("k", "retyped"), ("x", "changed")}
    (x_change,) = d.by_change("changed")
    # Boundaries are anchored on x and k (values, not types): dropping s and adding a column
    # move none, so only the chunks around the edited rows 250-260 of x are new.
    ((start, stop),) = x_change.row_ranges
    assert start <= 250 and stop >= 261 and stop - start <= 2 * 400
    assert any(s.column == "x" and s.stat == "mean" for s in d.stat_shifts)
    text = repr(d)
    assert "retyped    k: int64 -> int32" in text and f"changed    x: rows {start}-" in text
    assert not mlops.diff("d@v1", "d@v1") and "identical content" in repr(
        mlops.diff("d@v1", "d@v1")
    )


def test_diff_of_appended_rows_names_the_new_range() -> None:
    df = frame(1000)
    save_small_chunks(df, "app")
    save_small_chunks(pd.concat([df, frame(150, seed=4)], ignore_index=True), "app")
    d = mlops.diff("app@v1", "app@v2")
    assert d.rows_line() == "1,000 -> 1,150 (+150): appended rows 1,000-1,149"
    assert d.changes == [] and d.unchanged == 3  # the shared rows did not change


def test_files_and_folders_round_trip_and_dedup(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text("x,y\n1,2\n")
    (folder / "sub" / "b.bin").write_bytes(os.urandom(5000))
    snap = mlops.snapshot(folder, "raw")
    assert snap.kind == "dir" and snap.objects == 2
    restored = mlops.load("raw")
    assert isinstance(restored, Path) and restored.name == "data"
    assert (restored / "sub" / "b.bin").read_bytes() == (folder / "sub" / "b.bin").read_bytes()
    assert mlops.load("raw") == restored  # an identical restored copy is reused

    (folder / "a.csv").write_text("x,y\n1,3\n")
    changed = mlops.snapshot(folder, "raw")
    assert changed.version == 2 and changed.objects_written == 1
    d = mlops.diff("raw@v1", "raw@v2")
    assert [(c.column, c.change) for c in d.changes] == [("a.csv", "changed")]

    single = mlops.snapshot(folder / "a.csv", "one")
    target = tmp_path / "out" / "a.csv"
    assert mlops.load("one", to=target) == target.resolve()
    assert target.read_text() == "x,y\n1,3\n"
    assert single.bytes_written == 0  # the same bytes are already stored for raw@v2
    target.write_text("edited")
    with pytest.raises(MLOpsUsageError, match="already exists and differs"):
        mlops.load("one", to=target)


def test_unchanged_files_are_not_hashed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20))
    hashed: list[str] = []
    real = files.digest_file
    monkeypatch.setattr(files, "digest_file", lambda p: hashed.append(p) or real(p))
    mlops.snapshot(big, "big")
    mlops.snapshot(big, "big")
    assert hashed == [str(big)]
    big.write_bytes(os.urandom(1 << 20))
    assert mlops.snapshot(big, "big").version == 2 and len(hashed) == 2


def test_gc_removes_unreferenced_data_at_once_and_unattributed_temp_files_after_a_grace() -> None:
    snap = mlops.snapshot(frame(), "kept")
    orphan = STORE / object_key("ab" * 32)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x" * 4096)
    stale_tmp = STORE / "tmp" / "crashed.part"  # no writer tag: gc cannot tell who wrote it
    stale_tmp.parent.mkdir(exist_ok=True)
    stale_tmp.write_bytes(b"y" * 100)

    kept = service.collect_garbage(current_settings(), dry_run=True, grace_s=3600)
    assert kept.reclaimed_bytes == 0 and orphan.exists()  # younger than the grace asked for
    dry = mlops.gc_snapshots(dry_run=True)
    assert dry.reclaimed_bytes == 4096 and dry.removed["objects"] == 1 and orphan.exists()
    assert "would reclaim 4.0 KiB" in repr(dry)
    old = 1_000_000_000
    os.utime(stale_tmp, (old, old))
    done = mlops.gc_snapshots()
    assert done.reclaimed_bytes == 4196 and not orphan.exists() and not stale_tmp.exists()
    assert done.by_name["kept"][0] == 1 and done.kept_objects == snap.objects
    assert_frame_equal(mlops.load("kept"), frame())
    assert mlops.verify_snapshots()


def test_a_damaged_file_object_is_detected(tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(10_000))
    snap = mlops.snapshot(source, "blob")
    manifest = service.open_store(current_settings()).manifest(snap.id)
    victim = manifest["content"]["object"]
    before = read_object(victim)
    flip_byte(victim, at=0.0)  # its first byte changed, wherever it is stored
    assert read_object(victim)[1:] == before[1:] and read_object(victim)[0] != before[0]
    with pytest.raises(mlops.SnapshotCorrupted, match=r"blob@v1.*do not hash to its id"):
        mlops.load("blob", to=tmp_path / "restored.bin")
    assert not (tmp_path / "restored.bin").exists()
    assert not mlops.verify_snapshots("blob")


def test_slow_snapshots_show_progress_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from jupyter_mlops.snapshots import progress

    monkeypatch.setattr(progress, "SHOW_AFTER_S", 0.0)
    snap = save_small_chunks(frame(1000), "slow", chunk_rows=100)
    err = capsys.readouterr().err
    assert "snapshot slow" in err and "B/s" in err  # bytes done and their rate
    mlops.load(snap.ref)
    assert "load slow@v1" in capsys.readouterr().err


@pytest.mark.parametrize("bad_path", ["../../evil.txt", "/tmp/evil.txt", "a/../../evil.txt"])
def test_a_crafted_manifest_cannot_write_outside_the_restore_folder(
    tmp_path: Path, bad_path: str
) -> None:
    """A shared store is not trusted: paths inside a (self-consistent) manifest are checked."""
    from jupyter_mlops.snapshots.hashing import digest_bytes, digest_json
    from jupyter_mlops.snapshots.store import json_bytes

    store = service.open_store(current_settings())
    store.ensure_format()
    object_id = digest_bytes(b"payload")
    with store.backend.writer(object_key(object_id)) as fh:
        fh.write(b"payload")
    entry = {"path": bad_path, "size": 7, "mode": 0o644, "object": object_id}
    content = {"format": 1, "kind": "dir", "name": "d", "entries": [entry]}
    snapshot_id = digest_json(content)
    store.put_manifest({"id": snapshot_id, "content": content})
    store.backend.create_exclusive(
        "refs/crafted/v000001.json", json_bytes({"snapshot": snapshot_id, "version": 1})
    )
    with pytest.raises(MLOpsUsageError, match="unsafe path"):
        mlops.load("crafted", to=tmp_path / "out" / "d")
    assert not list(tmp_path.rglob("evil.txt")) and not Path("/tmp/evil.txt").exists()
