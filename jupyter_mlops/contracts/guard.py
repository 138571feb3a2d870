"""Contracts on the write path: the data of a new snapshot version is checked before it is saved.

``%snapshot`` calls :func:`before_version` with the object it is about to store. With no contract
on the name nothing happens. Otherwise every rule runs on the data (pandera); a violation stops
the save with one line (:class:`ContractViolated`) unless ``--allow-violations``, which saves the
version with a ``contract`` tag saying what failed. Either way the outcome is recorded like a
gate decision (``<home>/reports/`` and, inside a run, on the run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import records
from ..config import Settings
from ..errors import GateFailed, MLOpsUsageError
from . import store
from .results import ContractResult
from .rules import Outcome, Rule, validate

if TYPE_CHECKING:
    import pandas as pd

    from .store import Contract


class ContractViolated(GateFailed):
    """The data breaks its contract: the cell shows the rules' table instead of a traceback."""

    def __init__(self, result: ContractResult, advice: str) -> None:
        super().__init__(f"{result.summary()}; {advice}")
        self.result = result

    def _render_traceback_(self) -> list[str]:
        lines = [f"ContractViolated: {self.args[0]}", *self.result.table_lines()]
        return lines + [f"  report: {path}" for path in self.result.reports]


def as_frame(obj: Any, name: str) -> pd.DataFrame:
    """The data a contract reads: a pandas frame, anything with ``to_pandas()`` (Arrow, polars),
    or a Parquet file or folder."""
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        return obj
    if hasattr(obj, "read_all") or hasattr(obj, "read_next_batch"):
        raise MLOpsUsageError(
            f"the contract on {name!r} must read the data before it is saved, and a stream can "
            "be read once: pass reader.read_all() instead"
        )
    if hasattr(obj, "to_pandas"):
        return obj.to_pandas()
    if isinstance(obj, str | Path):
        path = Path(obj).expanduser()
        if path.suffix == ".parquet" or path.is_dir():
            try:
                return pd.read_parquet(path)
            except (OSError, ValueError):
                pass  # not Parquet after all: the error below
    raise MLOpsUsageError(
        f"{name!r} has a contract, which checks tables; {obj!r} is not a DataFrame, an Arrow "
        "table or Parquet data (snapshot it under another name, or drop the contract's rules)"
    )


def check_frame(
    contract: Contract, frame: pd.DataFrame, rules: Sequence[Rule] | None = None
) -> tuple[Outcome, ...]:
    """Every rule (or those given) checked on ``frame`` with pandera."""
    return tuple(validate(rule, frame) for rule in (contract.rules if rules is None else rules))


def record(settings: Settings, result: ContractResult) -> ContractResult:
    """Keep the outcome like a gate decision: JSON + JUnit in ``<home>/reports/`` and, inside a
    run, on the run (``%lineage`` and the panel read it there)."""
    from ..registry.decisions import record_in_mlflow, write_reports
    from ..registry.gates import verdict
    from ..tracking.active import active_run
    from ..tracking.client import mlflow_client

    run = active_run()
    decision = verdict(
        f"{result.label} on {result.subject}",
        result.checks(),
        run_id=run.run_id if run is not None else None,
    )
    reports = write_reports(settings.home, decision)
    if run is not None:
        record_in_mlflow(mlflow_client(run.tracking_uri), decision)
    return replace(result, reports=reports)


def before_version(
    settings: Settings,
    obj: Any,
    name: str,
    tags: dict[str, Any] | None,
    allow_violations: bool = False,
) -> dict[str, Any] | None:
    """The tags to save the new version of ``name`` with; raises :class:`ContractViolated` when
    the data breaks the name's contract (unless ``allow_violations``)."""
    contract = store.latest(settings.home, name)
    if contract is None:
        return tags
    frame = as_frame(obj, name)
    subject = f"new data for {name}"
    result = ContractResult(
        contract.name,
        contract.version,
        subject,
        check_frame(contract, frame),
        allowed=allow_violations,
    )
    result = record(settings, result)
    if result.passed:
        return tags
    if not allow_violations:
        raise ContractViolated(
            result, "no version was written; fix the data, or pass --allow-violations to keep it"
        )
    failed = f"{contract.label}: {len(result.failures)} of {len(result.outcomes)} rules failed"
    return {**(tags or {}), records.SNAPSHOT_TAG_CONTRACT: failed}
