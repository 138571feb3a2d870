"""What a folder snapshot store holds on disk, packs included, for tests that look at the files.

Small objects live in packs (``packs/<id>``, named in ``pack-indexes/<id>.json``), larger ones
loose under ``objects/``. These helpers read the files directly (not through the store's code),
so the tests check what is really on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from jupyter_mlops.records import SNAPSHOT_PACK_INDEXES, SNAPSHOT_PACKS
from jupyter_mlops.snapshots.repository import object_key

STORE = Path(".mlops/snapshots")


def files(where: str, store: Path = STORE) -> set[str]:
    """Every file under ``store/where``, relative to the store."""
    root = store / where
    return {str(p.relative_to(store)) for p in root.rglob("*") if p.is_file()}


def _indexes(store: Path) -> dict[str, dict[str, list[int]]]:
    """Pack id -> its index's slots, for every index on disk."""
    found = {}
    for path in (store / SNAPSHOT_PACK_INDEXES).glob("*.json"):
        index = json.loads(path.read_text())
        found[index["pack"]] = index["objects"]
    return found


def stored_objects(store: Path = STORE) -> set[str]:
    """Object keys the store holds: loose files, and the objects of every indexed pack."""
    keys = files("objects", store)
    for pack, slots in _indexes(store).items():
        if (store / SNAPSHOT_PACKS / pack).is_file():
            keys |= {object_key(object_id) for object_id in slots}
    return keys


def orphan_packs(store: Path = STORE) -> set[str]:
    """Packs without an index (a save killed between the two writes), and indexes without their
    pack (which neither saves nor gc, deleting the index first, should ever leave)."""
    indexed = set(_indexes(store))
    packs = {p.name for p in (store / SNAPSHOT_PACKS).glob("*") if p.is_file()}
    return {f"{SNAPSHOT_PACKS}/{pack}" for pack in packs - indexed} | {
        f"{SNAPSHOT_PACK_INDEXES}/{pack}.json" for pack in indexed - packs
    }


def object_location(object_id: str, store: Path = STORE) -> tuple[Path, int, int]:
    """(file, offset, length) of an object's bytes: its loose file, or its slice of a pack."""
    loose = store / object_key(object_id)
    if loose.is_file():
        return loose, 0, loose.stat().st_size
    for pack, slots in _indexes(store).items():
        if object_id in slots:
            offset, length = slots[object_id]
            return store / SNAPSHOT_PACKS / pack, offset, length
    raise FileNotFoundError(f"object {object_id} is in no file of {store}")


def holders(keys: set[str], store: Path = STORE) -> set[str]:
    """The files (relative to the store) that hold these object keys: loose files and packs."""
    found = set()
    for key in keys:
        path, _, _ = object_location(key.split("/", 1)[1].replace("/", ""), store)
        found.add(str(path.relative_to(store)))
    return found


def flip_byte(object_id: str, at: float = 0.5, store: Path = STORE) -> None:
    """Damage one byte of an object where it is stored (the file is made writable first)."""
    path, offset, length = object_location(object_id, store)
    os.chmod(path, 0o644)
    with open(path, "r+b") as fh:
        fh.seek(offset + int(length * at))
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x01]))


def read_object(object_id: str, store: Path = STORE) -> bytes:
    path, offset, length = object_location(object_id, store)
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)
