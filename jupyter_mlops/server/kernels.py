"""The store a notebook's live kernel uses, as the kernel last reported it.

The panel sends the id of the notebook's kernel (``kernel=<id>``); the server checks that it
runs a kernel of that id and reads the status file the kernel keeps beside its connection file
(:mod:`jupyter_mlops.kernel_status`). A kernel that never loaded the extension, one that is
gone, or one Jupyter restarted after its process died (the file names the dead process) reports
nothing, and the request falls back to resolving the notebook's folder.
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
    kernel = kernel_manager.get_kernel(kernel_id)
    connection_file = getattr(kernel, "connection_file", "")
    pid = getattr(getattr(kernel, "provisioner", None), "pid", None)  # local kernels only
    return read_status(connection_file, experiment, pid) if connection_file else None
