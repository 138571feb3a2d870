"""The Jupyter Server face: one thin authenticated handler per resource, under the namespace."""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from . import browse, monitoring
from .handlers import ROUTES

NAMESPACE = "jupyter-mlops/api"


def setup_handlers(web_app: Any) -> None:
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base_url, NAMESPACE, route), handler)
            for route, handler in [*ROUTES, *browse.ROUTES, *monitoring.ROUTES]
        ],
    )
    web_app.settings["jupyter_mlops_schedule_host"] = monitoring.host_schedules(web_app)
