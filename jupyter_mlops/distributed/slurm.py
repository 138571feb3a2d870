"""What Slurm says about a submitted job: ``scontrol show job`` read into our job states.

Slurm's own states are many (``PENDING``, ``RUNNING``, ``COMPLETING``, ``TIMEOUT``, ...); the
notebook needs five: queued, running, done, failed, cancelled. A job Slurm has forgotten
(``MinJobAge`` past its end) or a machine without ``scontrol`` gives ``None``: the job folder
(result file, error reports) then decides.
"""

from __future__ import annotations

import shutil
import subprocess

STATES = {
    "PENDING": "queued",
    "CONFIGURING": "queued",
    "REQUEUED": "queued",
    "RESIZING": "queued",
    "SUSPENDED": "queued",
    "RUNNING": "running",
    "COMPLETING": "running",
    "STAGE_OUT": "running",
    "COMPLETED": "done",
    "CANCELLED": "cancelled",
}
SCONTROL_TIMEOUT_S = 20


def slurm_state(slurm_id: str) -> str | None:
    """queued | running | done | failed | cancelled, or None when Slurm cannot say."""
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        return None
    try:
        done = subprocess.run(
            [scontrol, "show", "job", "-o", slurm_id],
            capture_output=True,
            text=True,
            timeout=SCONTROL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return None
    fields = dict(w.split("=", 1) for w in done.stdout.split() if "=" in w)
    state = fields.get("JobState")
    if done.returncode != 0 or state is None:
        return None
    return STATES.get(state, "failed")  # TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, PREEMPTED, ...
