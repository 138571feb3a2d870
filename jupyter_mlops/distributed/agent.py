"""``python -m jupyter_mlops.distributed.agent PARENT_PID -- ARGS``: torchrun tied to the kernel.

It asks for SIGKILL when its parent (the kernel) dies, so a kernel restart or crash stops the
agent, and the workers' own PDEATHSIG then stops every rank. Doing this here
rather than in a ``preexec_fn`` keeps the (multi-threaded) kernel from running Python between
fork and exec.
"""

from __future__ import annotations

import os
import runpy
import sys

from .procs import die_with_parent


def main(argv: list[str]) -> None:
    parent, separator, *torchrun_args = argv
    if separator != "--":
        raise SystemExit("usage: python -m jupyter_mlops.distributed.agent PARENT_PID -- ARGS")
    die_with_parent()
    if os.getppid() != int(parent):  # the kernel died before prctl took effect
        raise SystemExit(1)
    sys.argv = ["torchrun", *torchrun_args]
    runpy.run_module("torch.distributed.run", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
