"""Where contracts live: ``<home>/contracts/<NAME>/v<N>.json``, one immutable file per version.

A new version is written to a temporary file and linked to its name without replacing anything
(``os.link`` fails if the name exists), so nobody ever reads half a file, and a writer that loses
the race for a number rebuilds its rules on the winner's version (:func:`add`): two kernels
adding rules at once both get a version, and the later one holds both sets of rules.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import records
from ..errors import MLOpsError, MLOpsNotFound
from ..snapshots.names import check_name
from .rules import STRICT, Rule, parse_rule

VERSION_FILE = re.compile(r"v(\d+)\.json")


@dataclass(frozen=True)
class Contract:
    """One version of the contract on a snapshot name."""

    name: str
    version: int
    rules: tuple[Rule, ...]
    created: str = ""
    user: str = ""

    @property
    def label(self) -> str:
        return f"contract {self.name} v{self.version}"

    def __repr__(self) -> str:
        lines = [f"{self.label}: {len(self.rules)} rules"]
        lines += [f"  {rule.text}" for rule in self.rules]
        return "\n".join(lines)


def folder(home: Path, name: str) -> Path:
    return home / records.CONTRACTS_DIRNAME / check_name(name)


def versions(home: Path, name: str) -> list[int]:
    where = folder(home, name)
    if not where.is_dir():
        return []
    found = (VERSION_FILE.fullmatch(p.name) for p in where.iterdir())
    return sorted(int(m[1]) for m in found if m)


def names(home: Path) -> list[str]:
    root = home / records.CONTRACTS_DIRNAME
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def to_record(contract: Contract) -> dict[str, Any]:
    return {
        "name": contract.name,
        "version": contract.version,
        "rules": [rule.text for rule in contract.rules],
        "pinned": {
            rule.text: [list(c) for c in rule.columns] for rule in contract.rules if rule.columns
        },
        "created": contract.created,
        "user": contract.user,
    }


def from_record(record: dict[str, Any]) -> Contract:
    pinned = record.get("pinned") or {}
    rules = []
    for text in record["rules"]:
        rule = parse_rule(text)
        if rule.kind == STRICT and text in pinned:
            rule = Rule(STRICT, columns=tuple((str(c), str(t)) for c, t in pinned[text]))
        rules.append(rule)
    return Contract(
        name=record["name"],
        version=int(record["version"]),
        rules=tuple(rules),
        created=record.get("created", ""),
        user=record.get("user", ""),
    )


def read(home: Path, name: str, version: int | None = None) -> Contract:
    """A version of the contract on ``name`` (default: the latest)."""
    known = versions(home, name)
    if not known:
        raise MLOpsNotFound(f'no contract on {name!r}; declare one with %expect {name} "RULE" ...')
    number = known[-1] if version is None else version
    if number not in known:
        raise MLOpsNotFound(
            f"contract {name!r} has no version {number} (versions: {', '.join(map(str, known))})"
        )
    path = folder(home, name) / f"v{number}.json"
    try:
        return from_record(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MLOpsError(
            f"contract file {path} is damaged ({type(exc).__name__}: {exc}); restore it from a "
            f"backup, or move it aside and declare the rules again with %expect {name}"
        ) from None


def latest(home: Path, name: str) -> Contract | None:
    return read(home, name) if versions(home, name) else None


def add(
    home: Path,
    name: str,
    rules_after: Callable[[Contract | None], tuple[Rule, ...]],
    created: str = "",
    user: str = "",
) -> Contract:
    """Store the next version of ``name``'s contract: ``rules_after(latest)`` gives its rules.

    Compare-and-set: the version is linked under the number after the one its rules were built
    on, and if another writer took that number first the rules are built again on that writer's
    version, so adding rules from two kernels at once never loses either's.
    """
    where = folder(home, name)
    where.mkdir(parents=True, exist_ok=True)
    while True:
        known = versions(home, name)
        previous = read(home, name, known[-1]) if known else None
        numbered = Contract(
            name, (known[-1] if known else 0) + 1, rules_after(previous), created, user
        )
        with tempfile.NamedTemporaryFile(
            "w", dir=where, prefix=".tmp-", suffix=".json", delete=False, encoding="utf-8"
        ) as handle:
            json.dump(to_record(numbered), handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(handle.name, where / f"v{numbered.version}.json")
        except FileExistsError:
            continue  # another writer took this number: merge with its version instead
        finally:
            os.unlink(handle.name)
        return numbered
