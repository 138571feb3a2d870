"""Result objects of the registry: a registered ``ModelVersion`` and a gate's ``GateResult``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

CHECK_FIELDS = ("name", "value", "threshold", "passed", "detail")


@dataclass(frozen=True)
class ModelVersion:
    """One version of a registered model, linked to its run and so to its input snapshots."""

    name: str
    version: int
    flavor: str
    run_id: str
    run_name: str
    model_id: str | None = None
    snapshots: tuple[str, ...] = ()
    notebook: str | None = None
    aliases: tuple[str, ...] = ()
    features: str | None = None  # the feature function packaged with the model (--features)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def __repr__(self) -> str:
        lines = [
            f"model {self.name!r} version {self.version} ({self.flavor}) "
            f"from run {self.run_name!r}",
            f"  load with: mlops.load_model({f'{self.name}/{self.version}'!r}) or "
            f"mlflow.pyfunc.load_model({self.uri!r})",
        ]
        if self.snapshots:
            lines.append(f"  input snapshots: {', '.join(self.snapshots)}")
        if self.features:
            lines.append(f"  features: {self.features}, applied to raw input before the model")
        if self.aliases:
            lines.append(f"  aliases: {', '.join(self.aliases)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Check:
    """One row of a gate: what was measured, against what, and whether it passed."""

    name: str
    value: float | str | None
    threshold: str
    passed: bool
    detail: str = ""
    # What the check is, as data (lineage reads these, never the display name):
    kind: str = ""  # records.CHECK_KIND_*: require, versus, drift, alias
    inputs: tuple[str, ...] = ()  # drift: (reference, current) labels or snapshot REFs
    metric: str | None = None  # versus: the compared metric

    def value_text(self) -> str:
        if self.value is None:
            return "missing"
        return f"{self.value:.6g}" if isinstance(self.value, float) else str(self.value)


@dataclass(frozen=True)
class GateResult:
    """The verdict of ``%promote`` or ``%gate``: truthy when every check passed.

    ``moved`` says whether the alias moved; ``previous`` is the version the alias pointed to
    before (None when unset). ``user``, ``at`` and ``reports`` describe the recorded decision
    and stay out of the text form, which is deterministic.
    """

    subject: str  # "net v2 -> champion" or "run baseline"
    rows: tuple[Check, ...]
    decision: str  # promoted, rejected, dry-run, passed, failed
    model: str | None = None
    version: int | None = None
    alias: str | None = None
    run_id: str | None = None
    moved: bool = False
    previous: int | None = None
    dry_run: bool = False
    reason: str | None = None
    user: str = ""
    at: str = ""
    reports: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(row for row in self.rows if not row.passed)

    @property
    def checks(self) -> pd.DataFrame:
        """One row per check: name, value, threshold, passed, detail."""
        import pandas as pd

        return pd.DataFrame(
            [{**asdict(row), "value": row.value} for row in self.rows], columns=list(CHECK_FIELDS)
        )

    def headline(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        if self.dry_run:
            outcome = "dry run, nothing moved"
        elif self.alias is None:
            outcome = (
                f"{len(self.failures)} of {len(self.rows)} checks failed"
                if not self.passed
                else "all checks passed"
            )
        elif self.moved:
            outcome = (
                f"alias {self.alias!r} moved to v{self.version}, was {_version(self.previous)}"
            )
        else:
            outcome = f"alias {self.alias!r} not moved (still {_version(self.previous)})"
        return f"gate {verdict}: {self.subject} ({outcome})"

    def table_lines(self) -> list[str]:
        width = max([len(r.name) for r in self.rows] + [5])
        lines = []
        for row in self.rows:
            mark = "pass" if row.passed else "FAIL"
            line = (
                f"  [{mark}] {row.name:<{width}}  value {row.value_text():<10} need {row.threshold}"
            )
            lines.append(line + (f"  ({row.detail})" if row.detail else ""))
        return lines

    def __repr__(self) -> str:
        return "\n".join([self.headline(), *self.table_lines()])

    def record(self) -> dict[str, Any]:
        """The decision as JSON-ready data (what the reports and the version's tags hold)."""
        return {
            "subject": self.subject,
            "decision": self.decision,
            "passed": self.passed,
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "moved": self.moved,
            "previous": self.previous,
            "dry_run": self.dry_run,
            "reason": self.reason,
            "user": self.user,
            "at": self.at,
            "checks": [asdict(row) for row in self.rows],
        }


def _version(version: int | None) -> str:
    return "unset" if version is None else f"v{version}"
