"""Gate conditions: one small tokenizer and recursive-descent parser, never ``eval``.

    expr       := and_expr (("or" | ",") and_expr)*     "," only where the names allow it
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expr ")" | comparison
    comparison := operand OP operand          OP: == = != < <= > >=
    operand    := NAME | NUMBER | 'string' | "string" | true | false

Which NAMEs an expression may use is a :class:`Names`: ``--require`` reads a run
(``metrics.NAME``, ``params.NAME``, ``tags.NAME``; NAME is letters, digits and ``_ . / -``, or any
text in backquotes: ``metrics.`val acc```), ``--fail-on`` reads a drift result (``share_drifted``,
``column:age``...; see :mod:`jupyter_mlops.drift.gate`) or a monitor's windows (``window.NAME``,
``quality.NAME``, ``outcome.NAME``; see :mod:`jupyter_mlops.monitoring.gate`): a ``KIND.NAME``
is read only where the flag's Names list KIND. Metrics are numbers; params and tags are
strings, read as numbers when compared with one. Anything else (a call, an attribute, a bare name
such as ``__import__``) is a usage error.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import MLOpsUsageError

REQUIRE_USAGE = (
    "write comparisons such as \"metrics.val_acc >= 0.9 and params.optimizer == 'adam'\" "
    "(operands: metrics.NAME, params.NAME, tags.NAME, numbers, quoted strings; "
    "operators: == != < <= > >=; combine with and, or, not, parentheses)"
)
FIELD_KINDS = ("metrics", "params", "tags")
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
KEYWORDS = ("and", "or", "not", "true", "false")
NEGATED = {"==": "!=", "=": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
MAX_DEPTH = 32  # nested "not" and parentheses; deeper would exhaust Python's recursion

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<field>[A-Za-z_][A-Za-z0-9_]*\.(?:`[^`]+`|[A-Za-z0-9_][A-Za-z0-9_./-]*))
    | (?P<column>column:(?:`[^`]+`|"[^"]+"|'[^']+'|[^\s<>=!,()"'`]+))
    | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<string>'[^'\\]*'|"[^"\\]*")
    | (?P<op>==|!=|<=|>=|<|>|=)
    | (?P<paren>[()])
    | (?P<comma>,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Names:
    """What one flag's expressions may name, and how its errors explain the grammar."""

    flag: str  # --require, --fail-on
    usage: str  # appended to every error: what to write instead
    kinds: tuple[str, ...] = FIELD_KINDS  # KIND.NAME (metrics, window, ...) or column:NAME
    words: tuple[str, ...] = ()  # bare names, e.g. share_drifted
    comma_is_or: bool = False  # "a > 1, b > 2" reads as "a > 1 or b > 2"


REQUIRE = Names("--require", REQUIRE_USAGE)


@dataclass(frozen=True)
class Token:
    kind: str  # field, number, string, op, paren, keyword
    text: str
    position: int


@dataclass(frozen=True)
class Field:
    kind: str  # metrics, params, tags, column; "" for a bare name
    name: str

    def __str__(self) -> str:
        if not self.kind:
            return self.name
        if self.kind == "column":
            plain = re.fullmatch(r"""[^\s<>=!,()"'`]+""", self.name)
            return f"column:{self.name}" if plain else f'column:"{self.name}"'
        plain = re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./-]*", self.name)
        return f"{self.kind}.{self.name}" if plain else f"{self.kind}.`{self.name}`"


@dataclass(frozen=True)
class Literal:
    value: float | str | bool

    def __str__(self) -> str:
        if isinstance(self.value, bool):
            return str(self.value).lower()
        return repr(self.value) if isinstance(self.value, str) else f"{self.value:g}"


Operand = Field | Literal


@dataclass(frozen=True)
class Compare:
    left: Operand
    op: str
    right: Operand


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    items: tuple[Node, ...]


Node = Compare | Not | BoolOp


class MissingField(Exception):
    """The run has no such metric, param or tag (a failed check, not a usage error)."""

    def __init__(self, field: Field, known: list[str], why: str | None = None) -> None:
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        super().__init__(why or f"the run has no {field} (its {field.kind}: {shown or 'none'})")
        self.field = field


class Incomparable(Exception):
    """Two values cannot be compared (a string against a number that is not a number)."""


def _error(text: str, position: int, problem: str, names: Names = REQUIRE) -> MLOpsUsageError:
    shown = repr(text) if len(text) <= 120 else repr(text[:120]) + f"... ({len(text):,} chars)"
    return MLOpsUsageError(
        f"cannot read {names.flag} {shown}: {problem} at position {position}; {names.usage}"
    )


def tokenize(text: str, names: Names = REQUIRE) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _error(text, position, f"unexpected {text[position : position + 12]!r}", names)
        kind = match.lastgroup or ""
        word = match.group()
        if kind == "word":
            if word in names.words:
                kind = "field"
            elif word.lower() in KEYWORDS:
                kind, word = "keyword", word.lower()
            else:
                raise _error(text, position, f"unknown name {word!r}", names)
        elif kind in ("field", "column"):
            if re.split("[.:]", word, maxsplit=1)[0] not in names.kinds:
                raise _error(text, position, f"unknown name {word!r}", names)
            kind = "field"
        elif kind == "comma":
            if not names.comma_is_or:
                raise _error(text, position, "unexpected ','", names)
            kind, word = "keyword", "or"
        if kind != "space":
            tokens.append(Token(kind, word, position))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, names: Names) -> None:
        self.text = text
        self.names = names
        self.tokens = tokenize(text, names)
        self.index = 0
        self.depth = 0

    def error(self, position: int, problem: str) -> MLOpsUsageError:
        return _error(self.text, position, problem, self.names)

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise self.error(len(self.text), "unexpected end")
        self.index += 1
        return token

    def at(self, kind: str, text: str | None = None) -> bool:
        token = self.peek()
        return token is not None and token.kind == kind and (text is None or token.text == text)

    def parse(self) -> Node:
        if not self.tokens:
            raise self.error(0, "empty expression")
        node = self.expr()
        if self.peek() is not None:
            token = self.take()
            raise self.error(token.position, f"unexpected {token.text!r}")
        return node

    def expr(self) -> Node:
        items = [self.and_expr()]
        while self.at("keyword", "or"):
            self.take()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.at("keyword", "and"):
            self.take()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def nest(self) -> Token:
        """Take a "not" or "(": one level deeper, refused beyond MAX_DEPTH."""
        token = self.take()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(token.position, f"nested more than {MAX_DEPTH} levels deep")
        return token

    def not_expr(self) -> Node:
        if self.at("keyword", "not"):
            self.nest()
            node: Node = Not(self.not_expr())
            self.depth -= 1
            return node
        if self.at("paren", "("):
            self.nest()
            node = self.expr()
            self.depth -= 1
            if not self.at("paren", ")"):
                token = self.peek()
                where = token.position if token else len(self.text)
                raise self.error(where, "missing ')'")
            self.take()
            return node
        return self.comparison()

    def comparison(self) -> Compare:
        left = self.operand()
        token = self.peek()
        if token is None or token.kind != "op":
            where = token.position if token else len(self.text)
            raise self.error(where, f"expected a comparison operator after {left}")
        self.take()
        return Compare(left, token.text, self.operand())

    def operand(self) -> Operand:
        token = self.take()
        if token.kind == "field":
            if token.text in self.names.words:
                return Field("", token.text)
            kind, _, name = token.text.partition(":" if token.text.startswith("column:") else ".")
            return Field(kind, name[1:-1] if name[:1] in ("`", '"', "'") else name)
        if token.kind == "number":
            return Literal(float(token.text))
        if token.kind == "string":
            return Literal(token.text[1:-1])
        if token.kind == "keyword" and token.text in ("true", "false"):
            return Literal(token.text == "true")
        raise self.error(token.position, f"expected a value, got {token.text!r}")


def parse(text: str, names: Names = REQUIRE) -> Node:
    """Parse one ``--require`` (or ``names.flag``) expression; any problem is a one-line usage
    error."""
    return _Parser(text, names).parse()


def fields(node: Node) -> list[Field]:
    """The metrics/params/tags an expression reads, in order of appearance."""
    if isinstance(node, Compare):
        return [o for o in (node.left, node.right) if isinstance(o, Field)]
    items = (node.item,) if isinstance(node, Not) else node.items
    return [f for item in items for f in fields(item)]


class Values(Protocol):
    """What an expression reads: a run's fields, or a drift result's quantities."""

    def get(self, field: Field) -> float | str: ...


@dataclass(frozen=True)
class RunValues:
    """What an expression can read of a run."""

    metrics: Mapping[str, float]
    params: Mapping[str, str]
    tags: Mapping[str, str]

    def get(self, field: Field) -> float | str:
        values: Mapping[str, Any] = getattr(self, field.kind)
        if field.name not in values:
            raise MissingField(field, sorted(k for k in values if not k.startswith("mlflow.")))
        return values[field.name]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return float(lowered == "true")
        try:
            return float(lowered)
        except ValueError:
            return None
    return None


def compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str) and op in ("==", "=", "!="):
        return OPERATORS[op](left, right)
    a, b = _number(left), _number(right)
    if a is None or b is None:
        raise Incomparable(f"cannot compare {left!r} {op} {right!r}")
    if math.isnan(a) or math.isnan(b):
        return op == "!="
    return OPERATORS[op](a, b)


def evaluate(node: Node, values: Values) -> bool:
    """True or False; raises MissingField or Incomparable when the run cannot answer."""
    if isinstance(node, Compare):
        read = [values.get(o) if isinstance(o, Field) else o.value for o in (node.left, node.right)]
        return compare(read[0], node.op, read[1])
    if isinstance(node, Not):
        return not evaluate(node.item, values)
    results = (evaluate(item, values) for item in node.items)
    return all(results) if node.op == "and" else any(results)
