"""The store a notebook's live kernel uses, as the kernel last reported it.

The panel sends the id of the notebook's kernel (``kernel=<id>``); the server checks that it
runs a kernel of that id and reads the status file the kernel keeps beside its connection file
(:mod:`jupyter_mlops.kernel_status`). A kernel that never loaded the extension, or one that is
gone, reports nothing, and the request falls back to resolving the notebook's folder.
"""

from __future__ import annotations

import re
from typing import Any

from ..config import Settings
from ..kernel_status import read_status

KERNEL_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


def reported_settings(
    kernel_manager: Any, kernel_id: str, experiment: str | None = None
) -> Settings | None:
    """What the server's kernel ``kernel_id`` last reported; None when it reported nothing."""
    if not kernel_id or not KERNEL_ID.fullmatch(kernel_id) or kernel_id not in kernel_manager:
        return None
    connection_file = getattr(kernel_manager.get_kernel(kernel_id), "connection_file", "")
    return read_status(connection_file, experiment) if connection_file else None
