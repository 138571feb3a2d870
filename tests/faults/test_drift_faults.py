"""``--fail-on`` decisions under faults: two processes gating drift on one store at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings

TRIALS = 5  # decisions per process
WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np, pandas as pd
    import jupyter_mlops as mlops
    from jupyter_mlops.registry.errors import GateRejected

    go, name, trials = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(0, 1, 2000), "b": rng.normal(0, 1, 2000)})
    current = reference.assign(a=reference["a"] + 1)
    (go.parent / f"ready-{name}").touch()
    deadline = time.monotonic() + 60
    while not go.exists():  # start together: the decisions interleave on one store
        if time.monotonic() > deadline:
            sys.exit("never told to go")
        time.sleep(0.01)
    failed = 0
    for trial in range(trials):
        try:
            mlops.drift(
                reference, current, fail_on="share_drifted > 0.1", model="net/1",
                labels=(f"{name}-ref", f"{name}-cur-{trial}"),
            )
        except GateRejected:
            failed += 1
    print(failed)
    """
)


def test_two_processes_gating_at_once_lose_no_decision(tmp_path: Path) -> None:
    with mlops.track("train"):
        mlops.log(val_acc=0.9)
    mlops.register(torch.nn.Linear(2, 2), "net")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(go), name, str(TRIALS)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("one", "two")
    ]
    ready = [tmp_path / f"ready-{name}" for name in ("one", "two")]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        if any(w.poll() is not None for w in workers):
            break
        time.sleep(0.05)
    go.touch()
    outputs = [w.communicate(timeout=240) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == [str(TRIALS), str(TRIALS)]

    folder = current_settings().home / "reports"
    recorded = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    drift = [r for r in recorded if str(r["subject"]).startswith("drift ")]
    assert len(drift) == 2 * TRIALS and len(list(folder.glob("*.xml"))) == len(recorded)
    assert {r["decision"] for r in drift} == {"failed"}

    gates = [n for n in mlops.lineage("net/1").of_kind("gate") if n.label.startswith("drift ")]
    assert sorted(n.label for n in gates) == sorted(r["subject"] for r in drift)
