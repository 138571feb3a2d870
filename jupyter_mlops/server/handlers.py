"""REST handlers. Each is a few lines over core code; errors are JSON ``{"message": ...}``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler

from .. import __version__
from ..config import Settings, resolve_settings
from ..errors import MLOpsNotFound, MLOpsUsageError
from ..tracking import remote
from . import actions, cache, deployments, pools, queries, warmup
from .kernels import reported_settings
from .models import StoreInfo

T = TypeVar("T")
DEADLINE_MARGIN_S = 10.0


class ApiError(tornado.web.HTTPError):
    """An HTTP error whose message goes to the client as JSON (the status line stays short)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(status_code)
        self.message = message


class MLOpsHandler(APIHandler):
    """Base: resolves the store of the request's ``path`` and reports errors as JSON."""

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

    def store_settings(self, experiment: str | None = None) -> tuple[Settings, str | None]:
        """The settings a kernel started for the ``path`` notebook (or folder) would resolve.

        Returns them with the notebook's API path (None for a folder). Nothing is created.
        """
        api_path = self.get_argument("path", "")
        target = self.local_path(api_path)
        notebook = target if target.is_file() and target.suffix == ".ipynb" else None
        folder = target if target.is_dir() else target.parent
        # The notebook's live kernel, when the panel names it and it reported its store.
        live = reported_settings(self.kernel_manager, self.get_argument("kernel", ""), experiment)
        if live is not None:
            return live, api_path if notebook else None
        try:
            settings = resolve_settings(
                folder,
                flags={"experiment": experiment or None},
                notebook=notebook,
                create_home=False,
            )
        except MLOpsUsageError as exc:
            raise ApiError(400, str(exc)) from None
        return settings, api_path if notebook else None

    def int_argument(self, name: str, default: int | None = None) -> int | None:
        text = self.get_argument(name, "")
        if text == "":
            return default
        try:
            return int(text)
        except ValueError:
            raise ApiError(400, f"{name}={text[:40]!r}: give a whole number") from None

    async def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run core code off the event loop, in the pool of the store it reads (a Settings
        first argument); usage errors become 400s, unknown names 404s, a silent tracking
        server 504 (its HTTP calls are bounded, and so is the wait for them).
        """
        uri = args[0].tracking_uri if args and isinstance(args[0], Settings) else ""

        def run() -> T:
            warmup.ensure_mlflow()
            with remote.bounded(uri):
                return func(*args, **kwargs)

        job = asyncio.wrap_future(pools.pool_for(uri).submit(run))
        deadline = remote.worst_case_s() + DEADLINE_MARGIN_S
        try:
            return await asyncio.wait_for(job, deadline if remote.is_remote(uri) else None)
        except TimeoutError:
            raise ApiError(504, remote.unanswered(uri, deadline)) from None
        except remote.TrackingServerUnavailable as exc:
            raise ApiError(504, str(exc)) from None
        except MLOpsNotFound as exc:
            raise ApiError(404, str(exc)) from None
        except MLOpsUsageError as exc:
            raise ApiError(400, str(exc)) from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            message = exc.message
        elif isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        else:
            message = self._reason
        self.finish(json.dumps({"message": message}))

    def send(self, payload: dict[str, Any]) -> None:
        self.finish(json.dumps(payload))


class StoreHandler(MLOpsHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        settings, notebook = self.store_settings()
        self.send(StoreInfo.from_settings(settings, notebook, __version__).to_json())


class RunsHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        settings, _ = self.store_settings(self.get_argument("experiment", None))
        limit = self.int_argument("limit", 100)
        token, sort = self.get_argument("page_token", None), self.get_argument("sort", None)
        filter_text = self.get_argument("filter", None)

        def page() -> str:
            found = queries.runs_page(
                settings, limit=limit or 0, page_token=token, sort=sort, filter=filter_text
            )
            return json.dumps(found.to_json())

        key = ("runs", settings.experiment, limit, token, sort, filter_text)
        self.finish(await self.call(cache.answer, settings, key, page))


class RunHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        settings, _ = self.store_settings()
        self.send((await self.call(queries.run_detail, settings, run_id)).to_json())


class SnapshotsHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        settings, _ = self.store_settings()
        self.send((await self.call(queries.snapshot_list, settings)).to_json())


class SnapshotHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        settings, _ = self.store_settings()
        detail = await self.call(
            queries.snapshot_detail,
            settings,
            name,
            version=self.int_argument("version"),
            against=self.int_argument("diff"),
        )
        self.send(detail.to_json())


class ModelsHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        settings, _ = self.store_settings()

        def listing() -> str:
            return json.dumps(queries.model_list(settings).to_json())

        self.finish(await self.call(cache.answer, settings, ("models",), listing))


class ModelHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        settings, _ = self.store_settings()
        self.send((await self.call(queries.model_detail, settings, name)).to_json())


class PromoteHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        settings, _ = self.store_settings()
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise ApiError(400, "the body is not valid JSON") from None
        request = await self.call(actions.parse_promote, body)
        self.send((await self.call(actions.promote_model, settings, name, request)).to_json())


class DriftHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        settings, _ = self.store_settings(self.get_argument("experiment", None))
        self.send((await self.call(queries.drift_list, settings)).to_json())


class DriftReportHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str, report: str) -> None:
        settings, _ = self.store_settings()
        self.send((await self.call(queries.drift_report, settings, run_id, report)).to_json())


class CompareHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        settings, _ = self.store_settings()
        run_ids = self.get_arguments("run")
        self.send((await self.call(queries.compare, settings, run_ids)).to_json())


class LineageHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        settings, _ = self.store_settings()
        self.send(await self.call(queries.lineage, settings, self.get_argument("ref", "")))


class DeploymentsHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        settings, _ = self.store_settings()
        self.send((await self.call(deployments.deployment_list, settings)).to_json())


class DeploymentStopHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        settings, _ = self.store_settings()
        self.send((await self.call(deployments.stop_deployment, settings, name)).to_json())


NAME = r"([^/]+)"
ROUTES: list[tuple[str, type[MLOpsHandler]]] = [
    ("store", StoreHandler),
    ("runs", RunsHandler),
    (f"runs/{NAME}", RunHandler),
    ("snapshots", SnapshotsHandler),
    (f"snapshots/{NAME}", SnapshotHandler),
    ("models", ModelsHandler),
    (f"models/{NAME}", ModelHandler),
    (f"models/{NAME}/promote", PromoteHandler),
    ("drift", DriftHandler),
    (f"drift/{NAME}/{NAME}", DriftReportHandler),
    ("lineage", LineageHandler),
    ("compare", CompareHandler),
    ("deployments", DeploymentsHandler),
    (f"deployments/{NAME}/stop", DeploymentStopHandler),
]
