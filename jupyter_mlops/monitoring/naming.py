"""How a monitored model is named: ``NAME@ALIAS`` (or ``NAME/VERSION``, ``NAME``) and file slugs."""

from __future__ import annotations

import re

from ..errors import MLOpsUsageError


def model_name(model: str) -> str:
    """``churn`` from ``churn@champion``, ``churn/3`` or ``churn``."""
    if not isinstance(model, str) or not model.strip():
        raise MLOpsUsageError("name the model as NAME@ALIAS (e.g. churn@champion)")
    return re.split("[@/]", model.strip().removeprefix("models:/"), maxsplit=1)[0]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "model"
