"""Progress of long saves and loads: bytes and bytes/s, shown only past ``SHOW_AFTER_S``.

A text bar on stderr (tqdm): JupyterLab redraws it in place, and a notebook run in batch
(nbconvert, papermill) keeps its final line. A widget bar (``tqdm.auto``) was left out on
purpose: a batch run saves a widget as its first frame, "0%". Small snapshots finish before the
delay and show nothing at all.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

SHOW_AFTER_S = 1.0


def _bar_class() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """Counts units done, bytes by default (``total`` when known); silent for short work."""

    def __init__(self, total: int | None, description: str, unit: str = "B") -> None:
        self.done = 0
        self.bar: Any = None
        bar = _bar_class()
        if bar is None:
            return
        self.bar = bar(
            total=total,
            desc=description,
            unit=unit,
            unit_scale=unit == "B",
            unit_divisor=1024,
            delay=SHOW_AFTER_S,
            file=sys.stderr,
            leave=True,  # a cleared bar would leave an empty stderr box in a notebook
        )

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.bar is not None:
            self.bar.close()
