"""REST handlers. Each is a few lines over core code; errors are JSON ``{"message": ...}``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from .. import __version__
from ..config import resolve_settings
from ..errors import MLOpsUsageError
from .models import StoreInfo


class ApiError(tornado.web.HTTPError):
    """An HTTP error whose message goes to the client as JSON (the status line stays short)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(status_code)
        self.message = message


class MLOpsHandler(APIHandler):
    """Base: resolves request paths inside the server root and reports errors as JSON."""

    def root_dir(self) -> Path:
        return Path(self.settings.get("server_root_dir") or self.contents_manager.root_dir)

    def local_path(self, api_path: str) -> Path:
        """A contents-API path (relative to the server root) as a local path inside the root."""
        root = self.root_dir().resolve()
        if api_path.startswith("/") or "\\" in api_path or "\0" in api_path:
            raise ApiError(400, f"path must be relative to the server root: {api_path!r}")
        target = (root / api_path).resolve()
        if target != root and root not in target.parents:
            raise ApiError(400, f"path leaves the server root: {api_path!r}")
        if not target.exists():
            raise ApiError(404, f"no such file or folder: {api_path!r}")
        return target

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.message if isinstance(exc, ApiError) else self._reason
        self.finish(json.dumps({"message": message}))

    def send(self, payload: dict[str, Any]) -> None:
        self.finish(json.dumps(payload))


class StoreHandler(MLOpsHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        api_path = self.get_argument("path", "")
        target = self.local_path(api_path)
        notebook = target if target.is_file() and target.suffix == ".ipynb" else None
        folder = target if target.is_dir() else target.parent
        try:
            settings = resolve_settings(folder, notebook=notebook, create_home=False)
        except MLOpsUsageError as exc:
            raise ApiError(400, str(exc)) from None
        self.send(
            StoreInfo.from_settings(settings, api_path if notebook else None, __version__).to_json()
        )


ROUTES: list[tuple[str, type[MLOpsHandler]]] = [
    ("store", StoreHandler),
]
