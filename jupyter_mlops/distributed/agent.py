"""torchrun tied to the kernel: ``python -m jupyter_mlops.distributed.agent PARENT JOB -- ARGS``.

It asks for SIGKILL when its parent (the kernel) dies, so a kernel restart or crash stops the
agent, and the workers' own PDEATHSIG then stops every rank. Doing this here
rather than in a ``preexec_fn`` keeps the (multi-threaded) kernel from running Python between
fork and exec. When ranks fail, it writes how each one ended to ``errors/exits.json``: a rank
that died without a Python error (``os._exit``, a crash, the OOM killer) leaves nothing else.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

from .job import EXITS_FILE, write_atomic
from .procs import die_with_parent


def main(argv: list[str]) -> None:
    parent, job_dir, separator, *torchrun_args = argv
    if separator != "--":
        raise SystemExit(
            "usage: python -m jupyter_mlops.distributed.agent PARENT_PID JOB_DIR -- ARGS"
        )
    die_with_parent()
    if os.getppid() != int(parent):  # the kernel died before prctl took effect
        raise SystemExit(1)
    sys.argv = ["torchrun", *torchrun_args]
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    try:
        runpy.run_module("torch.distributed.run", run_name="__main__", alter_sys=True)
    except ChildFailedError as failed:
        exits = {rank: failure.exitcode for rank, failure in failed.failures.items()}
        write_atomic(Path(job_dir) / "errors" / EXITS_FILE, json.dumps(exits).encode())
        raise


if __name__ == "__main__":
    main(sys.argv[1:])
