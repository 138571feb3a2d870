"""``%snapshot list``: every version of every name, as a DataFrame."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
]


def list_versions(store: SnapshotStore, name: str | None = None) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for record in store.all_records(name):
        manifest = store.manifest(record["snapshot"], f"{record['name']}@v{record['version']}")
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
            }
        )
    frame = pd.DataFrame(rows, columns=LIST_COLUMNS)
    return frame.astype({"version": "int64", "rows": "Int64", "columns": "Int64", "bytes": "int64"})
