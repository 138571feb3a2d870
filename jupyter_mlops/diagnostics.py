"""``%mlops status`` and ``%mlops doctor``: which store this kernel uses, and does it all work."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import environment
from .config import Settings
from .notebook import NotebookIdentity

LABEXTENSION_NAME = "jupyter-mlops"


@dataclass(frozen=True)
class Status:
    settings: Settings
    notebook: NotebookIdentity

    def rows(self) -> list[tuple[str, str, str]]:
        s = self.settings
        src = s.sources
        return [
            ("store", str(s.home), src.get("home", "")),
            ("tracking URI", s.tracking_uri, src.get("tracking_uri", "")),
            ("experiment", s.experiment, src.get("experiment", "")),
            ("snapshots", s.snapshot_store, src.get("snapshot_store", "")),
            ("notebook", str(self.notebook.path or "unknown"), self.notebook.source),
            ("gate mode", s.gate_mode, src.get("gate_mode", "")),
            ("display", s.display, src.get("display", "")),
        ]

    def __repr__(self) -> str:
        lines = ["jupyter-mlops status"]
        lines += [f"  {k:<13} {v}  ({origin})" for k, v, origin in self.rows()]
        return "\n".join(lines)


@dataclass(frozen=True)
class Check:
    name: str
    level: str  # ok, warn, fail
    detail: str
    hint: str = ""


@dataclass(frozen=True)
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.level != "fail" for c in self.checks)

    def __bool__(self) -> bool:
        return self.ok

    def counts(self) -> dict[str, int]:
        return {lvl: sum(c.level == lvl for c in self.checks) for lvl in ("ok", "warn", "fail")}

    def summary(self) -> str:
        n = self.counts()
        return f"{n['ok']} ok, {n['warn']} warning(s), {n['fail']} failed"

    def __repr__(self) -> str:
        lines = [f"jupyter-mlops doctor: {self.summary()}"]
        for c in self.checks:
            lines.append(f"  {c.level:<5} {c.name:<20} {c.detail}")
            if c.hint and c.level != "ok":
                lines.append(f"  {'':<5} {'':<20} -> {c.hint}")
        return "\n".join(lines)


def check_store_writable(home: Path) -> Check:
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(
            "store writable",
            "fail",
            f"{home}: {exc.strerror}",
            "set MLOps.home (or MLOPS_HOME) to a writable folder",
        )
    return Check("store writable", "ok", str(home))


def check_mlflow(tracking_uri: str) -> Check:
    from .tracking import remote

    try:
        from .tracking.client import mlflow_client

        with remote.bounded(tracking_uri):  # a silent server fails the check in seconds
            mlflow_client(tracking_uri)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Check(
            "MLflow store opens",
            "fail",
            f"{tracking_uri}: {first[:200]}",
            "check MLOps.tracking_uri / MLFLOW_TRACKING_URI; a server URI must be reachable",
        )
    version = environment.package_version("mlflow-skinny") or environment.package_version("mlflow")
    return Check("MLflow store opens", "ok", f"{tracking_uri} (mlflow {version})")


def check_notebook(notebook: NotebookIdentity) -> Check:
    if notebook.path is None:
        return Check(
            "notebook path",
            "warn",
            "not resolved: runs are recorded under experiment 'Default'",
            "set MLOps.experiment, or run under JupyterLab, VS Code, nbconvert or papermill",
        )
    return Check("notebook path", "ok", str(notebook))


def check_torch() -> tuple[Check, Check]:
    if not environment.torch_installed():
        missing = Check(
            "torch importable",
            "warn",
            "not installed: %%distributed needs it",
            environment.TORCH_INSTALL,
        )
        return missing, Check("GPUs", "warn", "unknown: torch is not installed")
    probe = environment.probe_torch()
    if "error" in probe:
        failed = Check("torch importable", "fail", str(probe["error"]), environment.TORCH_INSTALL)
        return failed, Check("GPUs", "warn", "unknown: torch does not import")
    torch_check = Check("torch importable", "ok", f"torch {probe['version']}")
    gpus = environment.gpu_inventory()
    if gpus:
        names = ", ".join(f"{g.index}: {g.name}" for g in gpus)
        gpu_check = Check("GPUs", "ok", f"{len(gpus)} visible ({names}); NCCL available")
    else:
        gpu_check = Check("GPUs", "ok", "none visible: %%distributed uses CPU ranks with gloo")
    if environment.cuda_initialised_here():
        gpu_check = Check(
            "GPUs",
            "warn",
            gpu_check.detail + "; CUDA is already initialised in this kernel",
            "harmless for %%distributed (it never forks the kernel)",
        )
    return torch_check, gpu_check


def check_torchrun() -> Check:
    path = environment.torchrun_path()
    if path is None:
        return Check("torchrun", "fail", "not found", environment.TORCH_INSTALL)
    return Check("torchrun", "ok", path)


def labextension_state() -> tuple[Path | None, bool]:
    """Where our labextension is installed, and whether page_config disables it."""
    from jupyter_core.paths import jupyter_config_path, jupyter_path

    installed = next(
        (
            Path(base) / LABEXTENSION_NAME
            for base in jupyter_path("labextensions")
            if (Path(base) / LABEXTENSION_NAME / "package.json").is_file()
        ),
        None,
    )
    disabled = False
    for base in jupyter_config_path():
        page_config = Path(base) / "labconfig" / "page_config.json"
        try:
            data = json.loads(page_config.read_text())
        except (OSError, ValueError):
            continue
        listed = data.get("disabledExtensions", {})
        if (isinstance(listed, dict) and listed.get(LABEXTENSION_NAME)) or (
            isinstance(listed, list) and LABEXTENSION_NAME in listed
        ):
            disabled = True
    return installed, disabled


def check_labextension() -> Check:
    installed, disabled = labextension_state()
    if installed is None:
        return Check(
            "labextension",
            "warn",
            "not installed: the MLOps side panel is missing",
            'reinstall with pip install -e ".[test]" (needs Node 20)',
        )
    if disabled:
        return Check(
            "labextension",
            "warn",
            f"{installed} is disabled",
            f"jupyter labextension enable {LABEXTENSION_NAME}",
        )
    version = json.loads((installed / "package.json").read_text()).get("version", "?")
    return Check("labextension", "ok", f"{LABEXTENSION_NAME} {version} enabled")


def doctor(settings: Settings, notebook: NotebookIdentity) -> DoctorReport:
    torch_check, gpu_check = check_torch()
    return DoctorReport(
        [
            check_store_writable(settings.home),
            check_mlflow(settings.tracking_uri),
            check_notebook(notebook),
            torch_check,
            gpu_check,
            check_torchrun(),
            check_labextension(),
        ]
    )
