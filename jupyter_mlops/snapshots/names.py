"""Snapshot names and references, validated before any storage path is built from them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import MLOpsUsageError

NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
ID_PREFIX_PATTERN = re.compile(r"[0-9a-f]{8,64}")
VERSION_PATTERN = re.compile(r"v([0-9]{1,9})")


def check_name(name: object) -> str:
    """A name safe to use as one folder of the store, or a one-line usage error."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        shown = repr(name) if not isinstance(name, str) or len(name) < 80 else repr(name[:80])
        raise MLOpsUsageError(
            f"invalid snapshot name {shown}: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter, digit or '_' (no '/', '..' or spaces)"
        )
    return name


@dataclass(frozen=True)
class Ref:
    """A parsed REF: ``NAME``, ``NAME@vN``, ``NAME@latest`` or an id prefix (8+ hex chars)."""

    name: str | None = None
    version: int | None = None  # None: the latest version of ``name``
    id_prefix: str | None = None


def parse_ref(text: object) -> Ref:
    if not isinstance(text, str) or not text.strip():
        raise MLOpsUsageError("missing snapshot reference: give NAME, NAME@vN or an id prefix")
    text = text.strip()
    name, at, selector = text.partition("@")
    if at:
        check_name(name)
        if selector == "latest":
            return Ref(name)
        match = VERSION_PATTERN.fullmatch(selector)
        if not match or int(match.group(1)) < 1:
            raise MLOpsUsageError(
                f"bad version {selector!r} in {text!r}: use NAME@vN (N >= 1) or NAME@latest"
            )
        return Ref(name, int(match.group(1)))
    if NAME_PATTERN.fullmatch(text) and ".." not in text:
        return Ref(text, id_prefix=text if ID_PREFIX_PATTERN.fullmatch(text) else None)
    raise MLOpsUsageError(
        f"bad snapshot reference {text!r}: use NAME, NAME@vN, NAME@latest or an id prefix"
    )
