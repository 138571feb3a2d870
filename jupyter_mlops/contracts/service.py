"""The contract operations as the faces call them, with explicit :class:`Settings`.

``expect`` declares rules (a new contract version), ``contracts`` lists the history, ``check``
runs a contract on a snapshot (manifest first, pandera on the data for the rest),
``request_checker`` gives ``%serve --enforce-contract`` a fast per-request check, and
:class:`ContractCheck` is the ``--expect`` row of ``%promote``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import records
from ..config import Settings
from ..errors import MLOpsUsageError
from ..registry.results import Check
from . import store
from .guard import check_frame, record
from .results import ContractResult
from .rules import (
    DTYPE,
    NOTNULL,
    ROW_KINDS,
    STRICT,
    Outcome,
    Rule,
    from_manifest,
    parse_rules,
    validate,
)
from .rules import schema as rule_schema
from .store import Contract

if TYPE_CHECKING:
    import pandas as pd


def expect(
    settings: Settings, name: str, texts: Sequence[str], *, replace: bool = False
) -> Contract:
    """Add rules to the contract on snapshot name ``name`` (a new version); a rule of the same
    kind on the same column replaces the older one, ``replace`` starts from nothing.

    ``schema strict`` pins the columns and dtypes of ``name``'s latest version (or, before any
    version exists, the columns the other rules name)."""
    from ..registry.models import user

    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise MLOpsUsageError(f'give at least one rule: %expect {name} "age between 0 120" ...')
    new = parse_rules(texts)
    given = {rule.key for rule in new}  # an earlier "schema strict" keeps what it pinned

    def rules_after(previous: Contract | None) -> tuple[Rule, ...]:
        merged: dict[tuple[str, str, str], Rule] = (
            {} if replace or previous is None else {r.key: r for r in previous.rules}
        )
        for rule in new:
            merged.pop(rule.key, None)  # the newer one goes last, in the order given
            merged[rule.key] = rule
        return tuple(
            _pinned(settings, name, list(merged.values()))
            if r.kind == STRICT and r.key in given
            else r
            for r in merged.values()
        )

    return store.add(settings.home, name, rules_after, _now(), user())


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def _pinned(settings: Settings, name: str, rules: list[Rule]) -> Rule:
    from ..snapshots import service as snapshots

    snapshot_store = snapshots.open_store(settings)
    if snapshot_store.versions(name):
        description = snapshots.describe(snapshot_store, f"{name}@latest")
        columns = tuple((c.name, c.type) for c in description.columns if not c.index)
    else:
        dtypes = {r.column: r.dtype for r in rules if r.kind == DTYPE and r.column}
        named = dict.fromkeys(r.column for r in rules if r.column)
        columns = tuple((c, dtypes.get(c, "")) for c in named if c)
    return Rule(STRICT, columns=columns)


def contracts(settings: Settings, name: str | None = None) -> pd.DataFrame:
    """``%expect list [NAME]``: every version of NAME's contract (newest last), or the latest
    version of every contract."""
    import pandas as pd

    if name is not None:
        found = [store.read(settings.home, name, v) for v in store.versions(settings.home, name)]
        if not found:
            store.read(settings.home, name)  # the not-found error, naming what to do
    else:
        found = [
            c for c in (store.latest(settings.home, n) for n in store.names(settings.home)) if c
        ]
    return pd.DataFrame(
        [
            {
                "name": c.name,
                "version": c.version,
                "rules": len(c.rules),
                "text": "; ".join(r.text for r in c.rules),
                "created": c.created,
                "user": c.user,
            }
            for c in found
        ],
        columns=["name", "version", "rules", "text", "created", "user"],
    )


def check(
    settings: Settings, ref: str, *, contract: str | None = None, keep: bool = True
) -> ContractResult:
    """Check the contract on a snapshot version (``contract`` defaults to the REF's name).

    Rules the manifest settles (rows, nulls, min/max, dtype, columns) are answered from it; only
    if some rule needs the data is the snapshot loaded (verified) and given to pandera. ``keep``
    records the outcome like a gate decision."""
    from ..snapshots import service as snapshots

    snapshot_store = snapshots.open_store(settings)
    description = snapshots.describe(snapshot_store, ref)
    if description.kind != "dataframe":
        raise MLOpsUsageError(
            f"{description.ref} is a {description.kind or 'non-table'} snapshot; contracts check "
            "DataFrame snapshots"
        )
    chosen = store.read(settings.home, contract or description.ref.partition("@")[0])
    answered = [from_manifest(rule, description) for rule in chosen.rules]
    pending = [
        rule for rule, outcome in zip(chosen.rules, answered, strict=True) if outcome is None
    ]
    if pending:
        frame = snapshots.load(settings, description.ref)
        on_data = iter(check_frame(chosen, frame, pending))
        answered = [outcome or next(on_data) for outcome in answered]
    outcomes: tuple[Outcome, ...] = tuple(o for o in answered if o is not None)
    result = ContractResult(chosen.name, chosen.version, description.ref, outcomes)
    return record(settings, result) if keep else result


def request_checker(settings: Settings, name: str) -> Callable[[pd.DataFrame], str | None]:
    """For ``%serve --enforce-contract NAME``: a function of one request's frame that returns
    the violation (naming the rule) or None.

    Only rules a single request can break apply: bounds, ranges, allowed values and ``not
    null`` on the columns the request has (row counts, uniqueness and null shares describe a
    whole data set). The contract's latest version is read once, here; schemas are compiled once.
    """
    contract = store.read(settings.home, name)
    compiled = [
        (rule, rule_schema(rule))
        for rule in contract.rules
        if rule.kind in ROW_KINDS or (rule.kind == NOTNULL and rule.share >= 1)
    ]

    def violation(frame: pd.DataFrame) -> str | None:
        for rule, schema in compiled:
            if rule.column not in frame.columns:
                continue
            outcome = validate(rule, frame, schema)
            if not outcome.passed:
                return f"{contract.label}: rule {rule.text!r} failed: {outcome.observed}"
        return None

    return violation


@dataclass(frozen=True)
class ContractCheck:
    """``%promote MODEL --expect NAME``: the contract on NAME re-checked on the version of NAME
    the candidate was trained on (its run's input snapshots, tagged on the model version)."""

    contract: str
    model: str  # NAME, NAME/VERSION or NAME@ALIAS: the candidate

    def check(self, settings: Settings) -> Check:
        from ..registry.models import resolve_version
        from ..tracking.client import mlflow_client

        version = resolve_version(mlflow_client(settings.tracking_uri), self.model)
        label = f"contract {self.contract} on the training data"
        refs = [
            r for r in records.tag_snapshots(version)[0] if r.partition("@")[0] == self.contract
        ]
        if not refs:
            shown = ", ".join(records.tag_snapshots(version)[0]) or "none"
            return Check(
                label,
                None,
                "every rule holds",
                False,
                f"{version.name} v{version.version} was not trained on a version of "
                f"{self.contract!r} (its input snapshots: {shown})",
                kind=records.CHECK_KIND_CONTRACT,
            )
        results = [check(settings, ref, contract=self.contract, keep=False) for ref in refs]
        total = sum(len(r.outcomes) for r in results)
        failed = [f"{r.subject}: {o.rule.text} ({o.observed})" for r in results for o in r.failures]
        return Check(
            f"{results[0].label} on {', '.join(refs)}",
            f"{total - len(failed)} of {total} rules passed",
            "every rule holds",
            not failed,
            "; ".join(failed),
            kind=records.CHECK_KIND_CONTRACT,
            inputs=tuple(refs),
        )


def expect_checks(expect: str | Sequence[str] | None, model: str) -> tuple[ContractCheck, ...]:
    """The ``--expect`` rows of a promotion of ``model``."""
    if not expect:
        return ()
    from ..snapshots.names import check_name

    names = [expect] if isinstance(expect, str) else list(expect)
    return tuple(ContractCheck(check_name(name), model) for name in names)
