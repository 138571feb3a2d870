"""Per-rank logs: split torchrun's prefixed stream into files and a rate-limited live view.

Workers' stdout and stderr reach the agent through torchrun's ``--tee``, each line prefixed by
``TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE`` with the global rank. Every line goes to
``logs/rank-N.log`` (the agent's own lines to ``logs/agent.log``); the cell shows the chosen
ranks, at most ``max_lines_per_s`` lines a second, so a chatty loop cannot flood the browser,
and never the lines gloo and c10d print themselves (C++ file:line, stacks): those are in the
files, and the cell's error says what they mean.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Container
from pathlib import Path
from typing import IO

from .errors import is_native_noise

PREFIX_TEMPLATE = "[rank${rank}]:"
PREFIXED = re.compile(r"^\[rank(\d+)\]:(.*)$")


class LogPump:
    def __init__(
        self,
        logs_dir: Path,
        sink: Callable[[str], None],
        *,
        ranks: Container[int] | None = (0,),
        max_lines_per_s: int = 50,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logs_dir = logs_dir
        self.sink = sink
        self.ranks = ranks
        self.max_lines_per_s = max_lines_per_s
        self.clock = clock
        self.files: dict[str, IO[str]] = {}
        self.agent_tail: deque[str] = deque(maxlen=40)
        self.window_start = clock()
        self.shown_in_window = 0
        self.suppressed = 0
        self.pending = b""

    def feed_bytes(self, chunk: bytes) -> None:
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            self.feed(line.decode("utf-8", errors="replace").rstrip("\r"))

    def feed(self, line: str) -> None:
        match = PREFIXED.match(line)
        if match is None:
            self.agent_tail.append(line)
            self._file("agent.log").write(line + "\n")
            return
        rank, text = int(match.group(1)), match.group(2)
        self._file(f"rank-{rank}.log").write(text + "\n")
        if (self.ranks is None or rank in self.ranks) and not is_native_noise(text):
            self._show(f"[rank {rank}] {text}")

    def mute(self) -> None:
        """From now on lines only go to the files: what dying ranks print is not news."""
        self.ranks = ()

    def close(self) -> None:
        if self.pending:
            self.feed(self.pending.decode("utf-8", errors="replace"))
            self.pending = b""
        self._report_suppressed()
        for f in self.files.values():
            f.close()
        self.files.clear()

    def _show(self, text: str) -> None:
        now = self.clock()
        if now - self.window_start >= 1.0:
            self._report_suppressed()
            self.window_start, self.shown_in_window = now, 0
        if self.shown_in_window >= self.max_lines_per_s:
            self.suppressed += 1
            return
        self.shown_in_window += 1
        self.sink(text)

    def _report_suppressed(self) -> None:
        if self.suppressed:
            self.sink(
                f"[jupyter-mlops] {self.suppressed} lines not shown (over "
                f"{self.max_lines_per_s}/s); full logs in {self.logs_dir}"
            )
            self.suppressed = 0

    def _file(self, name: str) -> IO[str]:
        if name not in self.files:
            self.files[name] = (self.logs_dir / name).open("a", buffering=1)
        return self.files[name]
