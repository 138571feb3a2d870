"""The panel's routes follow the notebook's live kernel: a real server, a real kernel, jp_fetch."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from jupyter_mlops.kernel_status import status_path
from tests.notebooks import notebook

NOTEBOOK = "project/nb.ipynb"


async def start_kernel(jp_fetch: Any, path: str) -> str:
    """Open a session for the notebook, as JupyterLab does; the kernel id."""
    body = {
        "path": path,
        "name": Path(path).name,
        "type": "notebook",
        "kernel": {"name": "python3"},
    }
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    return str(json.loads(response.body)["kernel"]["id"])


async def run_in_kernel(serverapp: Any, kernel_id: str, code: str) -> None:
    client = serverapp.kernel_manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        reply = await client.execute_interactive(code, timeout=60, output_hook=lambda _: None)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()


async def store(jp_fetch: Any, **params: str) -> dict[str, Any]:
    response = await jp_fetch("jupyter-mlops", "api", "store", params={"path": NOTEBOOK, **params})
    return dict(json.loads(response.body))


async def test_store_follows_the_kernels_config_and_falls_back_to_the_folder(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    project = jp_root_dir / "project"
    project.mkdir()
    notebook(path=project / "nb.ipynb")
    kernel_id = await start_kernel(jp_fetch, NOTEBOOK)
    tour_home = (project / "tour-store").resolve()

    # A kernel that has not loaded the extension reports nothing: the folder's store is shown.
    folder = await store(jp_fetch, kernel=kernel_id)
    assert folder["experiment"] == "nb" and "kernel" not in folder["sources"]
    assert folder["home"] == str(project.resolve() / ".mlops")

    await run_in_kernel(
        jp_serverapp,
        kernel_id,
        "%load_ext jupyter_mlops\n%config MLOps.home = 'tour-store'\n"
        "%config MLOps.experiment = 'tour'",
    )
    live = await store(jp_fetch, kernel=kernel_id)
    assert live["home"] == str(tour_home)
    assert live["tracking_uri"] == f"sqlite:///{tour_home}/mlflow.db"
    assert live["experiment"] == "tour"
    assert live["sources"]["experiment"] == "%config"
    connection_file = jp_serverapp.kernel_manager.get_kernel(kernel_id).connection_file
    assert live["sources"]["kernel"] == str(status_path(connection_file))
    assert not tour_home.exists(), "reporting the store must not create it"

    # A later %config is seen after the cell that made it; the selector overrides the experiment.
    await run_in_kernel(jp_serverapp, kernel_id, "%config MLOps.experiment = 'second'")
    assert (await store(jp_fetch, kernel=kernel_id))["experiment"] == "second"
    response = await jp_fetch(
        "jupyter-mlops", "api", "experiments", params={"path": NOTEBOOK, "kernel": kernel_id}
    )
    assert json.loads(response.body)["current"] == "second"
    response = await jp_fetch(
        "jupyter-mlops",
        "api",
        "runs",
        params={"path": NOTEBOOK, "kernel": kernel_id, "experiment": "picked"},
    )
    assert json.loads(response.body)["experiment"] == "picked"

    # Without the kernel's id, or with one the server does not run, the folder decides.
    assert (await store(jp_fetch))["experiment"] == "nb"
    assert (await store(jp_fetch, kernel="0" * 8))["experiment"] == "nb"
    assert (await store(jp_fetch, kernel="../../etc"))["experiment"] == "nb"

    # A kernel that shuts down removes its status file.
    await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id)
    assert not status_path(connection_file).exists()


async def test_a_killed_kernels_status_file_is_removed_by_the_next_kernel(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    """SIGKILL leaves no chance to clean up: the next kernel that reports removes the file of a
    kernel whose connection file is gone and whose process is dead, and no other."""
    project = jp_root_dir / "project"
    project.mkdir()
    notebook(path=project / "nb.ipynb")
    manager = jp_serverapp.kernel_manager
    killed = await start_kernel(jp_fetch, NOTEBOOK)
    await run_in_kernel(jp_serverapp, killed, "%load_ext jupyter_mlops")
    orphan = status_path(manager.get_kernel(killed).connection_file)
    assert orphan.exists()
    os.kill(manager.get_kernel(killed).provisioner.pid, signal.SIGKILL)
    await manager.shutdown_kernel(killed, now=True)  # Jupyter removes the connection file
    assert orphan.exists()  # the kernel could not remove its own

    other = await start_kernel(jp_fetch, "project/other.ipynb")
    await run_in_kernel(jp_serverapp, other, "print(1)")
    # A status file of a kernel whose connection file is still there is not touched.
    kept = status_path(manager.get_kernel(other).connection_file)
    kept.write_text(json.dumps({"format": 1, "pid": 2**22 + 1}))
    notebook(path=project / "third.ipynb")
    third = await start_kernel(jp_fetch, "project/third.ipynb")
    await run_in_kernel(jp_serverapp, third, "%load_ext jupyter_mlops")
    assert not orphan.exists() and kept.exists()
    await manager.shutdown_kernel(third)
    await manager.shutdown_kernel(other)
