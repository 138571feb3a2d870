"""Retention: ``%snapshot rm NAME@vN [--force]`` and ``%snapshot gc --keep-last N [--keep-tagged]``.

Runs and model versions are real (a migrated SQLite MLflow store, ``mlops.track``,
``mlops.register``, ``mlflow.log_input``); bytes are counted on disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from IPython.core.completer import provisionalcompleter
from pandas.testing import assert_frame_equal

import jupyter_mlops as mlops
from jupyter_mlops import records
from jupyter_mlops.context import current_settings
from jupyter_mlops.errors import MLOpsNotFound, MLOpsUsageError
from jupyter_mlops.snapshots import service
from jupyter_mlops.snapshots.repository import manifest_key, object_key, version_key
from jupyter_mlops.snapshots.retention import Removal
from jupyter_mlops.snapshots.tombstones import removal_key
from jupyter_mlops.snapshots.verify import object_ids
from tests.store_files import object_location, stored_objects

STORE = Path(".mlops/snapshots")


def frame(seed: int, rows: int = 2_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "shared": np.arange(rows),  # the same in every version: deduplicated
            "x": rng.normal(size=rows),
            "s": [f"r{seed}-{i}" for i in range(rows)],
        }
    )


def disk(where: str = "") -> dict[str, int]:
    """Every stored file (relative key -> bytes), from the disk itself."""
    root = STORE / where if where else STORE
    return {str(p.relative_to(STORE)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def data_bytes() -> int:
    """Bytes of data on disk: loose objects, manifests and packs (not the packs' indexes)."""
    data = ("objects/", "manifests/", "packs/")
    return sum(size for key, size in disk().items() if key.startswith(data))


def stored_size(key: str) -> int:
    """The bytes of one stored object (loose, or its slice of a pack) or manifest."""
    if key.startswith("objects/"):
        return object_location(key.removeprefix("objects/").replace("/", ""))[2]
    return disk()[key]


def keys_of(ref: str) -> set[str]:
    """The manifest and objects a live version uses, read from its manifest."""
    store = service.open_store(current_settings())
    resolved = store.resolve(ref)
    manifest = store.manifest(resolved.id)
    return {manifest_key(resolved.id)} | {object_key(o) for o, _ in object_ids(manifest)}


def live_keys() -> set[str]:
    refs = mlops.snapshots()["ref"]
    return set().union(*(keys_of(r) for r in refs)) if len(refs) else set()


# --- rm -------------------------------------------------------------------------------------------


def test_rm_then_load_refuses_and_the_number_is_never_reused() -> None:
    for seed in range(3):
        mlops.snapshot(frame(seed), "train")
    v2_file = (STORE / version_key("train", 2)).read_bytes()
    v2_id = service.open_store(current_settings()).resolve("train@v2").id
    manifest = (STORE / manifest_key(v2_id)).read_bytes()

    removal = mlops.remove_snapshot("train@v2")
    assert isinstance(removal, Removal) and removal.ref == "train@v2" and not removal.already
    assert removal.id == v2_id and removal.reclaimable_bytes > 0 and removal.used_by == []
    assert "Snapshot train@v2 removed at" in repr(removal) and "frees" in repr(removal)
    # A tombstone beside the version file; neither the version file nor the manifest changed.
    assert (STORE / removal_key("train", 2)).is_file()
    assert (STORE / version_key("train", 2)).read_bytes() == v2_file
    assert (STORE / manifest_key(v2_id)).read_bytes() == manifest

    with pytest.raises(mlops.SnapshotRemoved, match=r"train@v2 was removed by rm at 20\d\d-"):
        mlops.load("train@v2")
    with pytest.raises(MLOpsNotFound):  # a not-found error: the server answers 404
        mlops.load(v2_id[:12])
    assert list(mlops.snapshots("train")["ref"]) == ["train@v1", "train@v3"]
    assert mlops.remove_snapshot("train@v2").already  # a re-run changes nothing

    mlops.remove_snapshot("train@v3")
    assert_frame_equal(mlops.load("train"), frame(0))  # the latest live version
    assert mlops.snapshot(frame(2), "train").version == 4  # v2, v3 are never given out again
    for version in (1, 4):
        mlops.remove_snapshot(f"train@v{version}")
    with pytest.raises(mlops.SnapshotRemoved, match="every version of train was removed"):
        mlops.load("train")
    assert mlops.verify_snapshots().ok


@pytest.mark.parametrize(
    ("ref", "error"),
    [
        ("train", "give train@vN"),
        ("train@latest", "give train@vN"),
        ("train@v7", "train has no version v7; it has v1..v1"),
        ("other@v1", "no snapshot named 'other'"),
        ("train@vx", "bad version"),
    ],
)
def test_rm_removes_exactly_one_named_version_or_says_why_not(ref: str, error: str) -> None:
    mlops.snapshot(frame(0), "train")
    before = disk()
    with pytest.raises(MLOpsUsageError, match=error) as caught:
        mlops.remove_snapshot(ref)
    assert "\n" not in str(caught.value)
    assert disk() == before


@pytest.mark.usefixtures("store")
def test_a_version_a_run_or_a_model_uses_is_kept_unless_forced() -> None:
    with mlops.track("fit"):
        mlops.snapshot(frame(0), "train")  # saved inside the run: a dataset input
    version = mlops.register(lambda df: df, "clf")  # its run's inputs become model tags
    loaded_by = []
    for i in range(3):
        with mlops.track(f"eval{i}") as run:
            mlops.load("train@v1")  # loaded inside a run: an input too
        loaded_by.append(run.run_id[:8])
    mlops.snapshot(frame(1), "train")
    before = disk()

    with pytest.raises(MLOpsUsageError) as caught:
        mlops.remove_snapshot("train@v1")
    message = str(caught.value)
    assert "\n" not in message and "--force" in message
    assert message.startswith("train@v1 is used by run ") and "and 2 more" in message
    assert disk() == before  # nothing changed
    assert_frame_equal(mlops.load("train@v1"), frame(0))

    forced = mlops.remove_snapshot("train@v1", force=True)
    users = set(forced.used_by)
    assert f"model clf/{version.version}" in users and len(users) == 5
    assert all(any(rid in u for u in users) for rid in loaded_by)
    assert "forced  still used by" in repr(forced) and forced.by == "rm --force"
    with pytest.raises(mlops.SnapshotRemoved, match="removed by rm --force"):
        mlops.load("train@v1")
    assert not mlops.remove_snapshot("train@v2").used_by  # nobody used v2


@pytest.mark.usefixtures("store")
def test_a_plain_mlflow_log_input_with_our_digest_protects_the_version() -> None:
    snap = mlops.snapshot(frame(0), "train")
    mlflow.set_tracking_uri(current_settings().tracking_uri)
    with mlflow.start_run(run_name="plain") as run:
        dataset = mlflow.data.from_pandas(
            frame(0), name="my-train", digest=records.mlflow_digest(snap.id)
        )
        mlflow.log_input(dataset, context="training")
    with pytest.raises(MLOpsUsageError, match=rf"used by run {run.info.run_id[:8]} \(plain\)"):
        mlops.remove_snapshot("train@v1")
    report = mlops.gc_snapshots(keep_last=1)  # v1 is the last one: kept anyway
    assert report.verdicts == [] and mlops.load("train@v1") is not None


def test_an_unreachable_tracking_store_blocks_removal_unless_forced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for seed in range(2):
        mlops.snapshot(frame(seed), "train")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    before = disk()
    for attempt in (
        lambda: mlops.remove_snapshot("train@v1"),
        lambda: mlops.gc_snapshots(keep_last=1),
    ):
        with pytest.raises(MLOpsUsageError, match="cannot tell which runs and models use"):
            attempt()
    assert disk() == before
    assert mlops.gc_snapshots(keep_last=2).verdicts == []  # nothing beyond the window: no lookup
    assert mlops.remove_snapshot("train@v1", force=True).used_by == []
    assert list(mlops.snapshots()["ref"]) == ["train@v2"]


# --- gc --keep-last -------------------------------------------------------------------------------


@pytest.mark.usefixtures("store")
def test_keep_last_keeps_exactly_n_per_name_and_the_tagged_and_the_used() -> None:
    mlops.snapshot(frame(0), "a", tags={"stage": "gold"})  # a@v1: tagged
    with mlops.track("fit"):
        mlops.snapshot(frame(1), "a")  # a@v2: used by a run
    for seed in (2, 3, 4, 5):
        mlops.snapshot(frame(seed), "a")  # a@v3..a@v6
    for seed in (6, 7):
        mlops.snapshot(frame(seed), "b")  # b@v1, b@v2: within the last 2
    before = disk()

    dry = mlops.gc_snapshots(dry_run=True, keep_last=2, keep_tagged=True)
    assert disk() == before  # a dry run changes nothing
    assert dry.policy == "--keep-last 2 --keep-tagged" and dry.dry_run
    verdicts = {v.ref: (v.removed, v.reason) for v in dry.verdicts}
    assert verdicts["a@v1"] == (False, "tagged (stage=gold)")
    assert not verdicts["a@v2"][0] and verdicts["a@v2"][1].startswith("used by run ")
    assert verdicts["a@v3"] == (True, "beyond the last 2") == verdicts["a@v4"]
    assert set(verdicts) == {"a@v1", "a@v2", "a@v3", "a@v4"}
    assert all(v.bytes > 0 for v in dry.verdicts if v.removed)
    assert "would remove a@v3" in " ".join(repr(dry).split())

    done = mlops.gc_snapshots(keep_last=2, keep_tagged=True)
    assert done.removed_versions == ["a@v3", "a@v4"] and done.reclaimed_bytes == dry.reclaimed_bytes
    assert list(mlops.snapshots()["ref"]) == ["a@v1", "a@v2", "a@v5", "a@v6", "b@v1", "b@v2"]
    again = mlops.gc_snapshots(keep_last=2)  # without --keep-tagged the tagged one goes
    assert again.removed_versions == ["a@v1"]
    assert list(mlops.snapshots("a")["ref"]) == ["a@v2", "a@v5", "a@v6"]
    for ref, seed in [("a@v2", 1), ("a@v5", 4), ("a@v6", 5), ("b@v1", 6), ("b@v2", 7)]:
        assert_frame_equal(mlops.load(ref), frame(seed))
    assert mlops.verify_snapshots().ok


def test_gc_reclaims_exactly_what_only_removed_versions_used_counted_on_disk() -> None:
    base = frame(0)
    mlops.snapshot(base, "train")
    mlops.snapshot(base.assign(x=base.x + 1), "train")  # shares "shared" and "s" with v1
    mlops.snapshot(frame(9), "other")
    v1_only = keys_of("train@v1") - keys_of("train@v2") - keys_of("other@v1")
    shared = keys_of("train@v1") & keys_of("train@v2")
    assert v1_only and any(k.startswith("objects/") for k in shared)

    removal = mlops.remove_snapshot("train@v1")
    assert removal.reclaimable_bytes == sum(stored_size(k) for k in v1_only)
    before = data_bytes()
    dry = mlops.gc_snapshots(dry_run=True)
    assert data_bytes() == before and dry.reclaimed_bytes == removal.reclaimable_bytes
    done = mlops.gc_snapshots()
    assert done.reclaimed_bytes == removal.reclaimable_bytes == before - data_bytes()
    # Exactly the live data: v1's pack held the shared objects too, so they were repacked.
    assert stored_objects() | set(disk("manifests")) == live_keys()
    assert shared <= stored_objects() | set(disk("manifests"))  # dedup-shared objects survive
    assert_frame_equal(mlops.load("train@v2"), base.assign(x=base.x + 1))
    assert mlops.verify_snapshots().ok
    assert mlops.gc_snapshots().reclaimed_bytes == 0


def test_bad_keep_policies_are_one_line_usage_errors() -> None:
    mlops.snapshot(frame(0), "train")
    before = disk()
    for kwargs, error in [
        ({"keep_last": 0}, "keep at least 1 version"),
        ({"keep_last": -3}, "keep at least 1 version"),
        ({"keep_tagged": True}, "add --keep-last N"),
    ]:
        with pytest.raises(MLOpsUsageError, match=error):
            mlops.gc_snapshots(**kwargs)
    assert disk() == before


def test_a_damaged_version_can_be_removed_so_gc_runs_again() -> None:
    mlops.snapshot(frame(0), "train")
    mlops.snapshot(frame(1), "train")
    damaged = STORE / version_key("train", 1)
    os.chmod(damaged, 0o644)
    damaged.write_text("{not json")
    with pytest.raises(MLOpsUsageError, match=r"gc stopped.*%snapshot rm train@v1"):
        mlops.gc_snapshots()
    assert mlops.remove_snapshot("train@v1").id is None
    assert mlops.gc_snapshots().reclaimed_bytes > 0
    assert_frame_equal(mlops.load("train"), frame(1))


def test_rm_and_keep_last_on_an_fsspec_store(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("MLOPS_SNAPSHOT_STORE", f"local://{tmp_path / 'remote'}")
    for seed in range(3):
        mlops.snapshot(frame(seed), "train")
    mlops.remove_snapshot("train@v1")
    report = mlops.gc_snapshots(keep_last=1)
    assert report.removed_versions == ["train@v2"] and report.reclaimed_bytes > 0
    with pytest.raises(mlops.SnapshotRemoved, match="by gc --keep-last 1"):
        mlops.load("train@v2")
    assert_frame_equal(mlops.load("train"), frame(2))
    assert mlops.verify_snapshots().ok


# --- the faces ------------------------------------------------------------------------------------


def run(ip: Any, line: str) -> Any:
    result = ip.run_cell(line)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def test_magics_rm_and_gc_return_results_that_render(ip: Any) -> None:
    for seed in range(3):
        ip.user_ns[f"df{seed}"] = frame(seed)
        run(ip, f"%snapshot df{seed} --name train")
    removal = run(ip, "%snapshot rm train@v1")
    assert isinstance(removal, Removal) and removal.ref == "train@v1"
    html, _ = ip.display_formatter.format(removal)
    assert "train@v1" in html["text/html"] and "frees" in html["text/html"]

    dry = run(ip, "%snapshot gc --keep-last 1 --dry-run")
    assert dry.removed_versions == ["train@v2"] and dry.dry_run
    formatted, _ = ip.display_formatter.format(dry)
    assert "would remove" in formatted["text/html"] and "train@v2" in formatted["text/html"]
    assert "would remove train@v2" in " ".join(formatted["text/plain"].split())
    done = run(ip, "%mlops snapshot gc --keep-last 1 --keep-tagged")
    assert done.removed_versions == ["train@v2"]

    line = "%snapshot rm train@"
    with provisionalcompleter():  # TAB offers the versions that remain, never a removed one
        offered = [c.text for c in ip.Completer.completions(line, len(line))]
    assert offered == ["latest", "v3"]

    for line, error in [
        ("%snapshot rm train", "give train@vN"),
        ("%snapshot gc --keep-tagged", "add --keep-last N"),
        ("%snapshot gc --keep-last two", "invalid int value"),
        ("%snapshot rm train@v2", "train@v2 was already"),
    ]:
        result = ip.run_cell(line)
        if "already" in error:
            assert error in repr(result.result)
            continue
        assert type(result.error_in_exec).__name__ == "UsageError", line
        assert error in str(result.error_in_exec) and "\n" not in str(result.error_in_exec)
