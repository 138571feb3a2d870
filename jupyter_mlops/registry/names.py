"""Registered model names and their aliases, read cheaply for tab completion.

A SQLite registry is read directly (read-only, a few ms, no MLflow import and no store created);
any other registry goes through MLflow's client.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from ..tracking.client import registry_uri_for


def model_aliases(tracking_uri: str) -> dict[str, list[str]]:
    """``{model name: [aliases]}`` of the registry beside ``tracking_uri``; {} when it has none."""
    registry = registry_uri_for(tracking_uri)
    if registry.startswith("sqlite:///"):
        return _sqlite_aliases(Path(registry.removeprefix("sqlite:///")))
    from ..tracking.client import mlflow_client

    return {
        model.name: sorted(model.aliases)
        for model in mlflow_client(tracking_uri).search_registered_models(max_results=1000)
    }


def _sqlite_aliases(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        return {}
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.25)) as db:
            names: dict[str, list[str]] = {
                name: [] for (name,) in db.execute("SELECT name FROM registered_models")
            }
            for name, alias in db.execute(
                "SELECT name, alias FROM registered_model_aliases ORDER BY alias"
            ):
                names.setdefault(name, []).append(alias)
    except sqlite3.Error:  # not migrated yet, or locked by a writer: nothing to offer
        return {}
    return dict(sorted(names.items()))
