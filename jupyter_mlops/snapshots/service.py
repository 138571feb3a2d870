"""The snapshot operations as the faces call them: open the configured store, act, link to MLflow.

Magics and the Python API both come here, so ``%snapshot`` and ``mlops.snapshot`` behave alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import MLOpsUsageError
from . import catalog, gc, retention, sources, verify
from . import diff as diffing
from . import load as loading
from . import save as saving
from .mlflow_link import link_to_active_run
from .repository import SnapshotStore, manifest_key
from .results import GcReport, Snapshot, SnapshotDiff, VerifyReport

if TYPE_CHECKING:
    import pandas as pd


def open_store(settings: Settings) -> SnapshotStore:
    return SnapshotStore.open(settings.snapshot_store)


def stat_cache_path(settings: Settings) -> Path:
    return settings.home / "cache" / "snapshot-stat.sqlite"


def snapshot(
    settings: Settings,
    obj: Any,
    name: str,
    *,
    tags: dict[str, Any] | None = None,
    message: str | None = None,
    allow_pickle: bool = False,
    allow_violations: bool = False,
    sql: str | None = None,
    db: str | None = None,
) -> Snapshot:
    """Every save comes here: ``obj`` is anything :mod:`.sources` reads, a file or a folder, or
    (with ``sql`` and ``db``) the result of a query, streamed."""
    from ..contracts.guard import before_version

    if sql is not None or db is not None:
        if sql is None or db is None or obj is not None:
            raise MLOpsUsageError("give a query with both --sql QUERY and --db URL, and no source")
        obj = sources.sql_source(sql, db)
    store = open_store(settings)
    # The name's data contract, if any, decides before a version exists (and may tag it).
    tags = before_version(settings, obj, name, tags, allow_violations)
    result = saving.save(
        store,
        obj,
        name,
        tags=tags,
        message=message,
        stat_cache=stat_cache_path(settings),
        allow_pickle=allow_pickle,
    )
    manifest = store.manifest(result.id, result.ref)
    link_to_active_run(result, manifest, result.location, "saved")
    return result


def load(
    settings: Settings,
    ref: str,
    *,
    verify: bool = True,
    to: str | Path | None = None,
    allow_pickle: bool = False,
    as_: str = "pandas",
    batches: bool = False,
) -> Any:
    store = open_store(settings)
    resolved, manifest, value = loading.load(
        store,
        ref,
        verify=verify,
        to=to,
        restore_root=settings.home / "restored",
        stat_cache=stat_cache_path(settings),
        allow_pickle=allow_pickle,
        as_=as_,
        batches=batches,
    )
    if resolved.name is not None and resolved.version is not None:
        record = store.record(resolved.name, resolved.version)
        location = store.backend.url(manifest_key(resolved.id))
        link_to_active_run(saving.result(record, manifest), manifest, location, "loaded")
    return value


def snapshots(settings: Settings, name: str | None = None) -> pd.DataFrame:
    return catalog.list_versions(open_store(settings), name)


def diff(settings: Settings, ref_a: str, ref_b: str) -> SnapshotDiff:
    store = open_store(settings)
    return diffing.diff(store, store.resolve(ref_a), store.resolve(ref_b))


def verify_store(settings: Settings, ref: str | None = None) -> VerifyReport:
    store = open_store(settings)
    if ref is not None:
        return verify.verify(store, [store.resolve(ref)])
    targets, damaged = verify.every_version(store)
    return verify.verify(store, targets, damaged)


def collect_garbage(
    settings: Settings,
    *,
    dry_run: bool = False,
    grace_s: float = gc.GRACE_S,
    keep_last: int | None = None,
    keep_tagged: bool = False,
) -> GcReport:
    if keep_tagged and keep_last is None:
        raise MLOpsUsageError("--keep-tagged applies to a keep policy: add --keep-last N")
    policy = retention.KeepPolicy(keep_last, keep_tagged) if keep_last is not None else None
    return gc.collect(
        open_store(settings),
        dry_run=dry_run,
        grace_s=grace_s,
        policy=policy,
        users=lambda: retention.who_uses(settings),
    )


def remove_snapshot(settings: Settings, ref: str, *, force: bool = False) -> retention.Removal:
    return retention.remove(
        open_store(settings), ref, force=force, users=lambda: retention.who_uses(settings)
    )


@dataclass(frozen=True)
class ColumnSchema:
    """One stored column of a DataFrame snapshot, as its manifest records it."""

    name: str
    type: str
    index: bool
    bytes: int
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Description:
    """What a snapshot version holds, read from its manifest alone (no data is read)."""

    id: str
    ref: str
    kind: str  # dataframe, file or dir
    rows: int | None
    columns: list[ColumnSchema]  # index columns included, flagged

    @property
    def data_columns(self) -> int:
        return sum(1 for c in self.columns if not c.index)


def describe(store: SnapshotStore, ref: str) -> Description:
    """The version ``ref`` names, described by its manifest: the one reader of manifest fields
    for code outside this package (lineage, the panel's server)."""
    resolved = store.resolve(ref)
    manifest = store.manifest(resolved.id, resolved.ref)
    content = manifest.get("content", {})
    rows = content.get("rows") if isinstance(content, dict) else None
    return Description(
        id=resolved.id,
        ref=resolved.ref,
        kind=str(content.get("kind", "")) if isinstance(content, dict) else "",
        rows=rows if isinstance(rows, int) else None,
        columns=[
            ColumnSchema(
                name=str(c.get("label", c["name"])),
                type=str(c.get("pandas_dtype") or c.get("arrow_type") or ""),
                index=bool(c.get("index")),
                bytes=int(c.get("bytes", 0)),
                stats=c.get("stats") or {},
            )
            for c in manifest.get("columns", [])
        ],
    )
