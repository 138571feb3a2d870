"""Write-side glue of the REST API: the Promote action, over the same gate as ``%promote``."""

from __future__ import annotations

import math
from typing import Any

from ..config import Settings
from ..drift.gate import gate_spec
from ..errors import MLOpsUsageError
from ..registry.errors import GateRejected
from ..registry.gates import promote
from ..registry.results import GateResult
from .models import PromoteAnswer, PromoteRequest
from .queries import client_for, get_registered

FIELDS = {
    "alias": str,
    "version": int,
    "require": list,
    "vs": str,
    "min_delta": float,
    "metric": str,
    "reference": str,
    "current": str,
    "max_drift_share": float,
    "dry_run": bool,
    "reason": str,
}


def parse_promote(body: Any) -> PromoteRequest:
    """Validate the JSON body field by field; unknown or mistyped fields are usage errors."""
    if not isinstance(body, dict):
        raise MLOpsUsageError('the body must be a JSON object such as {"alias": "champion"}')
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise MLOpsUsageError(f"unknown field {unknown[0]!r}; fields: {', '.join(FIELDS)}")
    values: dict[str, Any] = {}
    for key, value in body.items():
        if value is None or value == "":
            continue
        kind = FIELDS[key]
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)
            if not math.isfinite(value):
                raise MLOpsUsageError(f"{key} must be a finite number")
        elif kind is int and isinstance(value, int) and not isinstance(value, bool):
            pass
        elif kind is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = tuple(v for v in value if v.strip())
        elif not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise MLOpsUsageError(f"{key} must be a {kind.__name__}, got {value!r}")
        values[key] = value
    if "alias" not in values:
        raise MLOpsUsageError('give the alias to move, e.g. {"alias": "champion"}')
    return PromoteRequest(**values)


def answer(result: GateResult) -> PromoteAnswer:
    return PromoteAnswer(
        passed=result.passed,
        moved=result.moved,
        decision=result.decision,
        headline=result.headline(),
        model=result.model or "",
        version=result.version,
        alias=result.alias,
        previous=result.previous,
        checks=[{**row, "value": _plain(row["value"])} for row in result.record()["checks"]],
        reports=list(result.reports),
    )


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def promote_model(settings: Settings, name: str, request: PromoteRequest) -> PromoteAnswer:
    """Run the gate; a failed gate is recorded like ``%promote``'s and returned, not raised."""
    get_registered(client_for(settings), name)
    ref = name if request.version is None else f"{name}/{request.version}"
    spec = gate_spec(
        request.require,
        vs=request.vs,
        min_delta=request.min_delta,
        metric=request.metric,
        reference=request.reference,
        current=request.current,
        max_drift_share=request.max_drift_share,
    )
    try:
        result = promote(
            settings, ref, request.alias, spec, dry_run=request.dry_run, reason=request.reason
        )
    except GateRejected as rejected:
        result = rejected.result
    return answer(result)
