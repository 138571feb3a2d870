"""Shared fixtures: every test gets its own store, cwd and a clean configuration."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import CodeType, FunctionType
from typing import Any

import pytest

from jupyter_mlops.config import OPTIONS, MLOps
from jupyter_mlops.tracking import active, run
from jupyter_mlops.tracking.client import mlflow_client
from tests.tracking_support import running_runs

# tests.engines: session fixtures that start a real MLflow server and an S3 API (moto).
pytest_plugins = ("pytest_jupyter.jupyter_server", "tests.engines", "tests.engines_compute")

# Temporary folders live under the repository (numbered per run, safe for concurrent runs), away
# from any .mlops/ store that /tmp may hold: the store is found by walking up from the cwd.
TEMP_ROOT = Path(__file__).resolve().parent.parent / ".pytest-tmp"
TEMP_ROOT.mkdir(exist_ok=True)
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", str(TEMP_ROOT))


# --- markers: kernel, torchrun, browser, engines, slow (faults: tests/faults/conftest.py) -----
# The fast subset is `-m "not kernel and not torchrun and not browser and not engines and not
# slow and not faults"` (README, section Tests). Marks are found, not written on each test:
#   kernel   the test (or a module-level helper it calls) starts a kernel: a name below, or a
#            string naming nbconvert/papermill (run as a process);
#   torchrun the module launches torchrun agents;
#   browser  tests/test_browser_*.py;
#   engines  the module starts an engine from a venv or package of its own (.ci/run makes them);
#   slow     over ~4 s on 2 busy cores without a kernel (measured; SLOW below).
KERNEL_NAMES = frozenset(
    {
        "NotebookClient",
        "KernelManager",
        "BlockingKernelClient",
        "start_new_kernel",
        "start_kernel",
        "running_lab",
    }
)
KERNEL_STRINGS = ("nbconvert", "papermill")
TORCHRUN_MODULES = frozenset(
    {
        "test_distributed_checkpoint",
        "test_distributed_kernel",
        "test_distributed_parallel",
        "test_distributed_pool",
        "test_distributed_run",
        "test_distributed_tracking",
        "test_distributed_faults",
    }
)
ENGINE_MODULES = frozenset(
    {
        "test_distributed_kubernetes",  # Kubeflow's models in .venv-k8s
        "test_distributed_ray",  # a local Ray head from .venv-ray
        "test_distributed_slurm_real",  # slurmctld + slurmd + munged from Debian's packages
        "test_monitoring_jupyter_scheduler",  # a jupyter server running jupyter-scheduler
        "test_remote_mlflow_server",  # mlflow server from .venv-mlflow
        "test_serving_kserve",  # KServe's models in .venv-k8s
        "test_snapshots_s3",  # moto's server from .venv-moto
    }
)
# Over ~4 s each in a run of the fast subset on 2 busy cores (`--durations`): the fast subset
# leaves them out, the whole suite runs them. A name here that no longer exists is an error.
SLOW = frozenset(
    {
        "tests/test_contracts_gate.py::test_expect_gate_blocks_an_alias_move_when_the_training_data_breaks_the_contract",
        "tests/test_contracts_serving.py::test_identical_predictions_on_raw_input_everywhere",
        "tests/test_contracts_serving.py::test_a_request_breaking_the_contract_is_a_422_naming_the_rule_and_is_logged",
        "tests/test_contracts_serving.py::test_skew_of_what_the_endpoint_logged",
        "tests/test_drift_engine.py::test_real_datasets_match_scipy",
        "tests/test_drift_gate.py::test_fail_on_is_recorded_like_a_promotion_in_reports_mlflow_and_lineage",
        "tests/test_magics_core.py::test_doctor_checks_everything_on_a_real_store",
        "tests/test_magics_core.py::test_doctor_reports_an_unreachable_tracking_server",
        "tests/test_monitoring_retrain.py::test_a_failing_gate_retrains_and_the_notebooks_gate_promotes",
        "tests/test_monitoring_schedules.py::test_a_schedule_fires_survives_a_host_restart_and_is_removed",
        "tests/test_monitoring_jupyter_scheduler.py::test_a_job_definition_is_made_listed_run_recorded_and_removed",
        "tests/test_monitoring_server.py::test_get_monitor_returns_the_latest_result",
        "tests/test_monitoring_server.py::test_the_server_extension_runs_the_schedules_of_its_store",
        "tests/test_registry_gates.py::test_racing_promotions_in_two_processes_cannot_both_win",
        "tests/test_registry_models.py::test_plain_mlflow_loads_by_alias_in_a_fresh_process",
        "tests/test_registry_models.py::test_torch_with_input_example_is_exported_and_keeps_a_dynamic_batch",
        "tests/test_snapshots_concurrency.py::test_gc_under_a_concurrent_writer_never_breaks_a_version",
        "tests/test_snapshots_concurrency.py::test_two_processes_saving_one_name_both_get_their_own_versions",
        "tests/test_serving_score.py::test_a_snapshot_is_scored_into_a_predictions_snapshot_with_its_run_and_lineage",
        "tests/test_serving_score.py::test_score_magic_streams_a_dataframe_to_a_child_process_and_keeps_its_index",
        "tests/test_serving_score.py::test_a_parquet_file_is_streamed_by_the_scorer",
        "tests/test_serving_score.py::test_bad_requests_are_one_line_errors_before_any_process_or_run",
        "tests/test_server_deployments.py::test_a_live_endpoint_is_listed_with_its_counters_and_stopped_by_the_route",
        "tests/test_serving_workers.py::test_two_workers_serve_log_and_stop_together",
        "tests/test_snapshots_retention.py::test_a_version_a_run_or_a_model_uses_is_kept_unless_forced",
        "tests/test_snapshots_sources.py::test_a_parquet_file_larger_than_the_memory_limit_streams_in_and_out",
        "tests/test_tracking_compare_display.py::test_compare_html_is_static_svg_of_tens_of_kb",
        "tests/test_tracking_compare_display.py::test_figure_is_the_interactive_plotly_version",
        "tests/test_tracking_lifecycle.py::test_a_new_store_has_exactly_the_schema_mlflows_own_creation_makes",
        "tests/test_tracking_logging.py::test_twenty_thousand_logs_are_all_in_the_store_exactly",
    }
)  # fmt: skip


# The suite runs on two pytest-xdist workers, a file to one worker whole (`-n 2 --dist loadfile`,
# README): files go out in collection order, so the longest (measured) go first and neither worker
# is left alone with one of them at the end.
LONGEST_FIRST = (
    "tests/test_distributed_ray.py",
    "tests/faults/test_tracking_faults.py",
    "tests/test_lineage_batch.py",
    "tests/test_distributed_run.py",
    "tests/faults/test_distributed_faults.py",
    "tests/test_distributed_slurm_real.py",
    "tests/faults/test_remote_faults.py",
    "tests/test_browser_tour.py",
    "tests/test_tracking_kernel.py",
)


def _longest_first(item: pytest.Item) -> int:
    path = item.nodeid.split("::")[0]
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def _starts_a_kernel(function: Any, seen: set[CodeType]) -> bool:
    """Whether ``function``, its nested functions or the test helpers it names start one."""
    code, names = getattr(function, "__code__", None), getattr(function, "__globals__", {})
    if code is None or code in seen:
        return False
    seen.add(code)
    codes = [code]
    while codes:
        current = codes.pop()
        if KERNEL_NAMES.intersection(current.co_names):
            return True
        for const in current.co_consts:
            if isinstance(const, str) and any(word in const for word in KERNEL_STRINGS):
                return True
            if isinstance(const, CodeType):
                codes.append(const)
        helpers = (names.get(name) for name in current.co_names)
        if any(
            _starts_a_kernel(helper, seen)
            for helper in helpers
            if isinstance(helper, FunctionType) and helper.__module__.startswith("tests.")
        ):
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ids = {item.nodeid.split("[")[0] for item in items}
    whole_files = not any("::" in arg for arg in config.args)
    files = {i.split("::")[0] for i in ids}
    stale = [name for name in SLOW if name not in ids and name.split("::")[0] in files]
    if whole_files and stale:
        raise pytest.UsageError(f"tests/conftest.py SLOW names tests that are gone: {stale}")
    for item in items:
        function = getattr(item, "function", None)
        if function is None:  # not a Python test (nbval cells: the root conftest.py)
            continue
        module = function.__module__.rsplit(".", 1)[-1]
        if module.startswith("test_browser_"):
            item.add_marker(pytest.mark.browser)
        if module in TORCHRUN_MODULES:
            item.add_marker(pytest.mark.torchrun)
        if module in ENGINE_MODULES:
            item.add_marker(pytest.mark.engines)
        fixtures = item._fixtureinfo.name2fixturedefs.values()  # type: ignore[attr-defined]
        seen: set[CodeType] = set()
        if _starts_a_kernel(function, seen) or any(
            _starts_a_kernel(d.func, seen)
            for defs in fixtures
            for d in defs
            if getattr(d.func, "__module__", "").startswith("tests.")
        ):
            item.add_marker(pytest.mark.kernel)
        if item.nodeid.split("[")[0] in SLOW:
            item.add_marker(pytest.mark.slow)
    items.sort(key=_longest_first)  # stable: every other file keeps its place and order


def pytest_sessionstart(session: pytest.Session) -> None:
    """Tests rely on finding no project store above their temporary folders."""
    base = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    stray = next((p / ".mlops" for p in base.parents if (p / ".mlops").is_dir()), None)
    if stray is not None:
        raise pytest.UsageError(f"a stray store {stray} sits above the test folders; remove it")


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run each test in a fresh folder with no inherited jupyter-mlops settings.

    The whole environment is restored afterwards: ``mlflow.set_tracking_uri`` writes
    MLFLOW_TRACKING_URI into it, and the kernels of later notebook tests would inherit it.
    """
    saved_environment = dict(os.environ)
    for option in OPTIONS.values():
        monkeypatch.delenv(option.env, raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    MLOps.clear_instance()
    yield tmp_path
    MLOps.clear_instance()
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        mlflow.set_tracking_uri(None)  # its global, and the env var it sets
    os.environ.clear()
    os.environ.update(saved_environment)


@pytest.fixture(scope="session")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite MLflow store per session (migrating costs seconds); tests copy it."""
    home = tmp_path_factory.mktemp("template") / ".mlops"
    mlflow_client(f"sqlite:///{home / 'mlflow.db'}")
    return home / "mlflow.db"


@pytest.fixture
def store(
    template_store: Path, isolated_store: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A fresh migrated store under ``<tmp>/.mlops``; fails the test if a run is left RUNNING."""
    home = isolated_store / ".mlops"
    home.mkdir()
    shutil.copy(template_store, home / "mlflow.db")
    monkeypatch.setenv("MLOPS_HOME", str(home))
    yield home
    assert not active._tracked, "a tracked run was left on the active stack"
    assert not run._open, "a tracked run was left open"
    assert running_runs(home) == [], "runs left RUNNING"


@pytest.fixture(scope="module")
def shared_home(template_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store per test module (a copy of the template), for tests that each use their own
    experiment and model names."""
    home = tmp_path_factory.mktemp("registry") / ".mlops"
    home.mkdir()
    shutil.copy(template_store, home / "mlflow.db")
    return home


@pytest.fixture
def registry_store(
    isolated_store: Path,
    shared_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Path]:
    """The module's shared store as MLOPS_HOME, with an experiment named after the test.

    Registry modules use it for every test: ``pytestmark = pytest.mark.usefixtures(...)``.
    """
    monkeypatch.setenv("MLOPS_HOME", str(shared_home))
    monkeypatch.setenv("MLOPS_EXPERIMENT", f"exp-{request.node.name}")
    yield shared_home


@pytest.fixture
def ip() -> Any:
    """An IPython shell with ``%load_ext jupyter_mlops`` done."""
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    import jupyter_mlops

    start_ipython()  # creates the global test shell once; later calls return None
    shell = get_ipython()
    shell.display_formatter.formatters["text/html"].enabled = True  # as in a kernel
    shell.config.pop("MLOps", None)  # %config in an earlier test merged into the global shell
    jupyter_mlops.load_ipython_extension(shell)
    return shell


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    # jupyter_scheduler (the [schedule] extra) is enabled by its install; only its own test uses it
    extensions = {"jupyter_mlops": True, "jupyter_scheduler": False}
    return {"ServerApp": {"jpserver_extensions": extensions}}
