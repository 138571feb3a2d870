"""Gate history under killed writers: the panel's reader and ``%lineage`` still agree.

A process promoting in a loop is SIGKILLed at a random moment of a decision (possibly between the
version's tag and the run's ``gates/`` artifact, or inside the artifact's copy); afterwards the
registry's gate history (what the panel shows) and the lineage walk read the same decisions, and
neither fails on what the killed writer left.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.registry import service
from tests.server_support import identity

TRIALS = 4
STARTUP_S = 60.0
DECISIONS_BEFORE_KILL = 2

CHILD = textwrap.dedent(
    """
    import sys
    import jupyter_mlops as mlops

    print("ready", flush=True)
    for i in range(10_000):
        mlops.promote("scored/1", f"alias{i % 3}", "metrics.val_acc >= 0.5")
        print("decided", flush=True)
    """
)


def lines_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            found.put(line.strip())

    threading.Thread(target=pump, daemon=True).start()
    return found


def wait_for(found: queue.Queue[str], wanted: str, count: int, deadline: float) -> None:
    seen = 0
    while seen < count:
        left = deadline - time.monotonic()
        assert left > 0, f"the child did not print {wanted!r} {count} times in time"
        if found.get(timeout=left) == wanted:
            seen += 1


def decisions_shown_by_lineage(number: int) -> list[tuple[str, str]]:
    found = mlops.lineage(f"scored/{number}")
    return sorted(
        ((str(n.attrs["at"]), str(n.attrs["alias"])) for n in found.of_kind("gate")),
        reverse=True,
    )


def test_killed_promotions_leave_one_gate_history(tmp_path: Path) -> None:
    with mlops.track("fit"):
        mlops.log(val_acc=0.9)
    mlops.register(identity, "scored")
    settings = current_settings()
    script = tmp_path / "promote_forever.py"
    script.write_text(CHILD, encoding="utf-8")
    rng = random.Random(14)
    survived = 0
    for _ in range(TRIALS):
        child = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=os.getcwd(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            found = lines_of(child)
            wait_for(found, "ready", 1, time.monotonic() + STARTUP_S)
            wait_for(found, "decided", DECISIONS_BEFORE_KILL, time.monotonic() + STARTUP_S)
            time.sleep(rng.uniform(0.0, 0.15))  # the fault lands somewhere inside a promotion
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait(timeout=10)
        history = service.gate_history(settings, "scored").get(1, [])
        panel = [(str(d["at"]), str(d["alias"])) for d in history]
        assert panel == decisions_shown_by_lineage(1)
        survived += len(panel) >= DECISIONS_BEFORE_KILL
    assert survived == TRIALS
