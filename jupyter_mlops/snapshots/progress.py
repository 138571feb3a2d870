"""A progress bar for snapshots that take longer than a second: tqdm when installed, else text."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

SHOW_AFTER_S = 1.0


class Progress:
    """Counts finished units; shows nothing for work that ends within ``SHOW_AFTER_S``."""

    def __init__(self, total: int, description: str, unit: str = "cell") -> None:
        self.total, self.description, self.unit = total, description, unit
        self.done = 0
        self.started = time.monotonic()
        self.bar: Any = None
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(
            total=total,
            desc=description,
            unit=unit,
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
        elif time.monotonic() - self.started > SHOW_AFTER_S and kind is None:
            took = time.monotonic() - self.started
            print(f"{self.description}: {self.done} {self.unit}s in {took:.1f} s", file=sys.stderr)
