"""The fault-injection suite: real processes, real faults, bounded in time.

Run it alone with ``python -m pytest tests/faults`` (or ``-m faults`` from anywhere).
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.faults)
