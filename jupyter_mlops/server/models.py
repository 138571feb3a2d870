"""Typed JSON payloads of the REST API."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..config import Settings


@dataclass(frozen=True)
class StoreInfo:
    """``GET store``: the store the kernel of a notebook in this folder resolves."""

    home: str
    home_exists: bool
    tracking_uri: str
    snapshot_store: str
    experiment: str
    notebook: str | None
    sources: dict[str, str]
    version: str

    @classmethod
    def from_settings(cls, settings: Settings, notebook: str | None, version: str) -> StoreInfo:
        return cls(
            home=str(settings.home),
            home_exists=settings.home_exists,
            tracking_uri=settings.tracking_uri,
            snapshot_store=settings.snapshot_store,
            experiment=settings.experiment,
            notebook=notebook,
            sources=dict(settings.sources),
            version=version,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
