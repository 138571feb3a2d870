"""The IPython face: one ``@magics_class`` per family, as in ``IPython/core/magics/``.

Magics parse their arguments, call the core, and return its result object; every line magic is
also reachable as ``%mlops <verb> ...``. Bad arguments raise IPython's ``UsageError``, which
IPython prints as one line without a traceback.
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics

from .contracts import ContractMagics
from .core import MLOpsMagics
from .distributed import DistributedMagics
from .drift import DriftMagics
from .lineage import LineageMagics
from .monitoring import MonitoringMagics
from .registry import RegistryMagics
from .serving import ServingMagics
from .snapshots import SnapshotMagics
from .tracking import TrackingMagics

FAMILIES: tuple[type[Magics], ...] = (
    MLOpsMagics,
    TrackingMagics,
    DistributedMagics,
    SnapshotMagics,
    DriftMagics,
    RegistryMagics,
    ServingMagics,
    LineageMagics,
    ContractMagics,
    MonitoringMagics,
)


def register_magics(shell: Any) -> None:
    for family in FAMILIES:
        shell.register_magics(family)
