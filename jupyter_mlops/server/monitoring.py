"""``GET monitor?model=NAME@ALIAS``: the latest ``%monitor`` result; and the schedule host.

The server extension hosts the schedules of the store at its root (see
:mod:`jupyter_mlops.monitoring.schedules`): a schedule fires with no kernel open.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import tornado.web

from ..config import resolve_settings
from ..errors import MLOpsUsageError
from .handlers import ApiError, MLOpsHandler

log = logging.getLogger(__name__)


class MonitorHandler(MLOpsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        from ..monitoring.service import latest

        settings, _ = self.store_settings()
        model = self.get_argument("model", "")
        if not model:
            raise ApiError(400, "name the model: monitor?model=NAME@ALIAS")
        self.send(await self.call(latest, settings, model))


ROUTES: list[tuple[str, type[MLOpsHandler]]] = [("monitor", MonitorHandler)]


def host_schedules(web_app: Any) -> Any:
    """Run the schedules of the store at the server root here, unless another host does."""
    from ..monitoring.schedules import start_host

    root = Path(web_app.settings.get("server_root_dir") or ".")
    try:
        settings = resolve_settings(root, create_home=False)
    except MLOpsUsageError as exc:
        log.warning("jupyter_mlops: no schedule host (%s)", exc)
        return None
    if not settings.home_exists:
        return None
    host = start_host(settings.home)
    if host is None:
        log.info("jupyter_mlops: another process runs the schedules of %s", settings.home)
    else:
        log.info("jupyter_mlops: running the schedules of %s", settings.home)
    return host
