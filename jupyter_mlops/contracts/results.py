"""``ContractResult``: what checking a contract on one piece of data found, rule by rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import records
from ..registry.results import Check
from .rules import Outcome

if TYPE_CHECKING:
    import pandas as pd

RULE_FIELDS = ("rule", "observed", "passed", "from_manifest")


@dataclass(frozen=True)
class ContractResult:
    """Truthy when every rule passed. ``subject`` is what was checked (a snapshot REF, or the
    data of a new version of the name); ``reports`` where the decision was written."""

    name: str
    version: int
    subject: str
    outcomes: tuple[Outcome, ...]
    allowed: bool = False  # saved anyway: --allow-violations
    reports: tuple[str, ...] = field(default=(), compare=False)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def failures(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.passed)

    @property
    def rules(self) -> pd.DataFrame:
        """One row per rule: rule, observed, passed, from_manifest (answered without data)."""
        import pandas as pd

        return pd.DataFrame(
            [(o.rule.text, o.observed, o.passed, o.from_manifest) for o in self.outcomes],
            columns=list(RULE_FIELDS),
        )

    @property
    def label(self) -> str:
        return f"contract {self.name} v{self.version}"

    def headline(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        manifest = sum(o.from_manifest for o in self.outcomes)
        read = (
            f"{manifest} from the manifest, {len(self.outcomes) - manifest} on the data"
            if manifest
            else "all on the data"
        )
        counted = (
            f"{len(self.outcomes)} rules passed"
            if self.passed
            else f"{len(self.failures)} of {len(self.outcomes)} rules failed"
        )
        allowed = ", saved anyway (--allow-violations)" if self.allowed and not self.passed else ""
        return f"{self.label} on {self.subject}: {verdict}, {counted} ({read}){allowed}"

    def summary(self) -> str:
        """One line: the headline and each failed rule with what was observed."""
        failed = "; ".join(f"{o.rule.text} ({o.observed})" for o in self.failures)
        return self.headline() + (f": {failed}" if failed else "")

    def table_lines(self) -> list[str]:
        width = max([len(o.rule.text) for o in self.outcomes] + [4])
        return [
            f"  [{'pass' if o.passed else 'FAIL'}] {o.rule.text:<{width}}  {o.observed}"
            + ("  (manifest)" if o.from_manifest else "")
            for o in self.outcomes
        ]

    def __repr__(self) -> str:
        return "\n".join([self.headline(), *self.table_lines()])

    def checks(self) -> tuple[Check, ...]:
        """The rules as rows of a gate decision (what the reports and MLflow keep)."""
        return tuple(
            Check(
                o.rule.text,
                o.observed,
                "holds",
                o.passed,
                "from the manifest" if o.from_manifest else "on the data",
                kind=records.CHECK_KIND_CONTRACT,
                inputs=(self.subject,),
            )
            for o in self.outcomes
        )
