"""``%snapshot list``: every version of every name, as a DataFrame.

The one listing the magics, the Python API and the server share. A damaged version file or
manifest never fails the list: its version is a row whose ``error`` says what is wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import SnapshotCorrupted
from .repository import SnapshotStore

if TYPE_CHECKING:
    import pandas as pd

LIST_COLUMNS = [
    "name",
    "version",
    "ref",
    "id",
    "kind",
    "rows",
    "columns",
    "bytes",
    "created",
    "message",
    "tags",
    "notebook",
    "error",
]


def list_versions(store: SnapshotStore, name: str | None = None) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for entry in store.scan(name):
        record = entry.record
        damaged = {**dict.fromkeys(LIST_COLUMNS, None), "name": entry.name, "ref": entry.ref}
        damaged.update(version=entry.version, kind="", bytes=0, message="", tags="", notebook="")
        if record is None:
            rows.append({**damaged, "id": "", "error": entry.error})
            continue
        try:
            manifest = store.manifest(record["snapshot"], entry.ref)
        except SnapshotCorrupted as exc:
            error = f"{exc.object} is damaged: {exc.problem}"
            rows.append({**damaged, "id": record["snapshot"][:16], "error": error})
            continue
        content = manifest["content"]
        kind = content["kind"]
        rows.append(
            {
                "name": record["name"],
                "version": record["version"],
                "ref": f"{record['name']}@v{record['version']}",
                "id": record["snapshot"][:16],
                "kind": kind,
                "rows": content["rows"] if kind == "dataframe" else None,
                "columns": (
                    sum(not c["index"] for c in manifest.get("columns", []))
                    if kind == "dataframe"
                    else None
                ),
                "bytes": manifest.get("bytes", 0),
                "created": record.get("created"),
                "message": record.get("message") or "",
                "tags": ", ".join(
                    f"{k}={v}" for k, v in sorted((record.get("tags") or {}).items())
                ),
                "notebook": (record.get("provenance") or {}).get("notebook") or "",
                "error": "",
            }
        )
    frame = pd.DataFrame(rows, columns=LIST_COLUMNS)
    return frame.astype({"version": "int64", "rows": "Int64", "columns": "Int64", "bytes": "int64"})
