"""Marks of the example notebooks that ``testpaths`` collects with nbval: each cell runs in a
real kernel and the notebooks take minutes, so the fast subset (README, Tests) leaves them out."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.kernel)
            item.add_marker(pytest.mark.slow)
