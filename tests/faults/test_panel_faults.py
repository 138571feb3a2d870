"""The kernel status the panel reads, under real faults: a SIGKILLed kernel, a racing reader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from jupyter_mlops.kernel_status import read_status, status_path
from tests.notebooks import notebook
from tests.test_server_kernels import NOTEBOOK, run_in_kernel, start_kernel, store

WRITES = 400
WRITER = """
import sys
from dataclasses import replace
from pathlib import Path
from jupyter_mlops.config import resolve_settings
from jupyter_mlops.kernel_status import StatusWriter
writer = StatusWriter(Path(sys.argv[1]))
base = resolve_settings(Path(sys.argv[2]), create_home=False)
print("ready", flush=True)
for i in range(int(sys.argv[3])):
    writer.write(replace(base, experiment=f"exp-{i}-" + "x" * (i % 97)))
"""


async def test_a_killed_kernels_status_is_not_shown_after_jupyter_restarts_it(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    project = jp_root_dir / "project"
    project.mkdir()
    notebook(path=project / "nb.ipynb")
    kernel_id = await start_kernel(jp_fetch, NOTEBOOK)
    setup = "%load_ext jupyter_mlops\n%config MLOps.experiment = 'tour'"
    kernel = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    for trial in range(3):
        await run_in_kernel(jp_serverapp, kernel_id, setup)
        assert (await store(jp_fetch, kernel=kernel_id))["experiment"] == "tour", trial
        killed = kernel.provisioner.pid
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while kernel.provisioner is None or kernel.provisioner.pid in (None, killed):
            assert time.monotonic() < deadline, "Jupyter did not restart the killed kernel"
            await kernel_ready(jp_serverapp, kernel_id, timeout=1)
        # The dead process's file is still there, but it is not what the new process uses.
        assert status_path(kernel.connection_file).exists()
        assert (await store(jp_fetch, kernel=kernel_id))["experiment"] == "nb", trial


async def kernel_ready(serverapp: Any, kernel_id: str, timeout: float) -> None:
    """Wait up to ``timeout`` seconds on the restarted kernel's channels (an event, not a sleep)."""
    client = serverapp.kernel_manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=timeout)
    except (RuntimeError, TimeoutError):
        pass
    finally:
        client.stop_channels()


def test_a_reader_racing_the_writer_never_sees_a_half_written_status(tmp_path: Path) -> None:
    connection = tmp_path / "kernel-race.json"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(status_path(connection)), str(tmp_path), str(WRITES)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    reads = torn = 0
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while writer.poll() is None and time.monotonic() < deadline:
        if not status_path(connection).exists():
            continue
        settings = read_status(connection)
        if settings is None:
            torn += status_path(connection).exists()  # not a torn read if the writer exited
            continue
        reads += 1
        _, number, padding = settings.experiment.split("-")
        assert padding == "x" * (int(number) % 97), settings.experiment  # one write, whole
        seen.add(int(number))
    assert writer.wait(timeout=30) == 0
    print(f"{reads} reads during {WRITES} writes ({len(seen)} distinct): {torn} torn")
    assert torn == 0 and len(seen) > 1
    assert not status_path(connection).exists()  # a writer that exits removes its status
