"""The panel's typed API module (labextension/src/api.ts) against the server's payloads.

Every payload class a route sends (``server/models.py``, ``server/browse.py``) has a TS twin
``I<Name>`` with the same fields, each ``| null`` exactly where the server's may be None, and
the same JSON type; every TS interface has a server twin (or is listed below with why not);
every route has a function in api.ts; and no other panel file talks to the server itself.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlops.server import browse, handlers, models

SRC = Path(__file__).resolve().parents[1] / "labextension" / "src"
API = SRC / "api.ts"

# TS interfaces of api.ts that are not a server payload class, and why.
NOT_PAYLOADS = {
    "IScope": "where a request goes (server, notebook, kernel, experiment), not a payload",
    "IRunsQuery": "the query-string options of GET runs",
}
# TS interfaces typing what the server sends as a plain dict (dict[str, Any] on its side).
UNTYPED_ON_SERVER = {
    "IColumnChange": "DiffPayload.changes",
    "IStatShift": "DiffPayload.stat_shifts",
    "IGateCheck": "PromoteAnswer.checks, a gate record's checks",
    "IGateRecord": "ModelVersionInfo.gates (GateResult.record())",
    "IMonitorVerdict": "GET monitor's answer, MonitorResult.to_dict() (the fields the panel reads)",
}
REQUESTS = {models.PromoteRequest}  # sent by the panel: defaulted fields are optional (`?`)

INTERFACE = re.compile(r"^export interface (\w+)(?: extends [\w.]+)? \{\n(.*?)^\}", re.M | re.S)
FIELD = re.compile(r"^  (\w+)(\?)?: (.+);$")


def ts_interfaces(text: str) -> dict[str, dict[str, tuple[bool, str]]]:
    """``interface IName { field?: type; ... }`` -> {IName: {field: (optional, type)}}."""
    found: dict[str, dict[str, tuple[bool, str]]] = {}
    for name, body in INTERFACE.findall(text):
        fields = {}
        for line in body.splitlines():
            match = FIELD.match(line)
            if match:
                fields[match[1]] = (match[2] == "?", match[3])
        found[name] = fields
    return found


def route_payloads() -> set[type]:
    """The dataclasses a route sends (those with ``to_json``), the request, and their parts."""
    roots = {
        cls
        for module in (models, browse)
        for cls in vars(module).values()
        if dataclasses.is_dataclass(cls)
        and isinstance(cls, type)
        and cls.__module__ == module.__name__
        and hasattr(cls, "to_json")
    } | REQUESTS
    seen: set[type] = set()
    todo = list(roots)
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for hint in typing.get_type_hints(cls).values():
            todo.extend(nested_dataclasses(hint))
    return seen


def nested_dataclasses(hint: Any) -> list[type]:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return [hint]
    return [cls for arg in typing.get_args(hint) for cls in nested_dataclasses(arg)]


def ts_type(hint: Any) -> str:
    """How a field of this Python type reads in TS once the server's JSON is parsed."""
    if hint is type(None):
        return "null"
    if hint is Any:
        return "unknown"
    if hint in (int, float):
        return "number"
    if hint is str:
        return "string"
    if hint is bool:
        return "boolean"
    if dataclasses.is_dataclass(hint):
        return f"I{hint.__name__}"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        members = [ts_type(a) for a in args if a is not type(None)]
        return " | ".join(members + (["null"] if type(None) in args else []))
    if origin in (list, tuple):
        item = ts_type(args[0])
        return f"({item})[]" if " | " in item else f"{item}[]"
    if origin is dict:
        return f"Record<{ts_type(args[0])}, {ts_type(args[1])}>"
    raise AssertionError(f"no TS spelling for {hint!r}")


def type_matches(expected: str, actual: str) -> bool:
    """Equal, where a server ``dict[str, Any]`` may be typed by one of UNTYPED_ON_SERVER."""
    loose = "|".join(map(re.escape, ["Record<string, unknown>", *UNTYPED_ON_SERVER]))
    pattern = re.escape(expected).replace(re.escape("Record<string, unknown>"), f"(?:{loose})")
    return re.fullmatch(pattern, actual) is not None


@pytest.fixture(scope="module")
def interfaces() -> dict[str, dict[str, tuple[bool, str]]]:
    return ts_interfaces(API.read_text())


def test_every_payload_class_has_a_ts_twin_and_back(interfaces: dict[str, Any]) -> None:
    server = {f"I{cls.__name__}" for cls in route_payloads()}
    client = set(interfaces) - set(NOT_PAYLOADS) - set(UNTYPED_ON_SERVER)
    assert sorted(server - client) == [], "server payloads without a TS interface in api.ts"
    assert sorted(client - server) == [], "TS interfaces without a server payload class"
    assert len(server) >= 20  # the reader found them (a broken regex would find none)


@pytest.mark.parametrize("cls", sorted(route_payloads(), key=lambda c: c.__name__), ids=str)
def test_ts_fields_match_the_dataclass(cls: type, interfaces: dict[str, Any]) -> None:
    name = f"I{cls.__name__}"
    ts_fields = interfaces[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    assert list(ts_fields) == list(fields), f"{name}: fields differ from {cls.__name__}'s"
    for field_name, field in fields.items():
        optional, ts = ts_fields[field_name]
        has_default = (
            field.default is not dataclasses.MISSING
            or field.default_factory is not dataclasses.MISSING
        )
        # The server always sends every field; only a request may leave defaulted ones out.
        assert optional == (cls in REQUESTS and has_default), f"{name}.{field_name}: optional"
        expected = ts_type(hints[field_name])
        assert type_matches(expected, ts), f"{name}.{field_name}: {ts!r}, server {expected!r}"


def test_the_reader_sees_optionality_and_nullability() -> None:
    parsed = ts_interfaces(
        "export interface IA {\n  /** doc */\n  a?: number | null;\n  b: string;\n}\n"
    )
    assert parsed == {"IA": {"a": (True, "number | null"), "b": (False, "string")}}
    assert not type_matches(ts_type(int | None), "number")
    assert type_matches(ts_type(list[dict[str, Any]]), "IGateCheck[]")


def test_every_route_has_an_api_function() -> None:
    text = API.read_text()
    for pattern, _ in [*handlers.ROUTES, *browse.ROUTES]:
        endpoint = re.escape(pattern).replace(re.escape(handlers.NAME), r"\$\{[^}]+\}")
        call = rf"request(?:<\w+>)?\(\s*scope,\s*['`]{endpoint}['`]"
        assert re.search(call, text), f"no function in api.ts calls the route {pattern!r}"


def test_only_the_api_module_talks_to_the_server() -> None:
    talkers = [
        path.relative_to(SRC).as_posix()
        for path in sorted(SRC.rglob("*.ts*"))
        if path != API
        and re.search(r"makeRequest|requestAPI|\bfetch\(|XMLHttpRequest", path.read_text())
    ]
    assert talkers == []
