"""The settings of the running process: the ``MLOps`` configurable, the notebook and the cwd.

Capability code asks :func:`current_settings` instead of reading config itself, so every face
(magics, Python API) resolves ``home`` and the tracking URI the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import MLOps, Settings, resolve_settings
from .notebook import NotebookIdentity, resolve_notebook


def user_namespace() -> Mapping[str, Any]:
    """The interactive namespace when running under IPython, without importing IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell.user_ns if shell is not None else {}


def current_notebook() -> NotebookIdentity:
    return resolve_notebook(user_namespace())


def current_settings(
    flags: Mapping[str, str | None] | None = None, *, create_home: bool = True
) -> Settings:
    return resolve_settings(
        Path.cwd(),
        flags=flags,
        configured=MLOps.instance().explicit(),
        notebook=current_notebook().path,
        create_home=create_home,
    )
