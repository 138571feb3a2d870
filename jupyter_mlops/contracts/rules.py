"""The rules of a data contract: parsed from text, answered from a manifest or checked by pandera.

One rule per string, written the way one says it::

    age between 0 120            age >= 0        score < 1.5       plan in {free, pro}
    customer_id unique           income not null            income not null >= 0.99
    age dtype int64              rows >= 1000    rows between 10 1e6          schema strict

A column name with spaces or operator characters goes in backquotes (`` `monthly fee` >= 0``),
as in ``--require``. Each rule maps to one pandera object (a ``Check``, a ``Column`` option, a
``DataFrameSchema`` option): pandera validates, we only parse and report. A rule that a
snapshot manifest's statistics settle (row count, null count, min/max, dtype, column names) is
answered from the manifest without reading data; :func:`from_manifest` says which.

Each kind of rule is one :class:`Kind` in :data:`KINDS`: its spelling, what a manifest settles,
its pandera schema and how a pass or failure reads all live there.
"""

from __future__ import annotations

import math
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeGuard

from ..errors import MLOpsUsageError

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa

    from ..snapshots.service import ColumnSchema, Description

    Columns = dict[str, ColumnSchema]  # a manifest's data columns by name

RULE_USAGE = (
    'write rules such as "age between 0 120", "age >= 0", "plan in {free, pro}", '
    '"customer_id unique", "income not null", "income not null >= 0.99", "age dtype int64", '
    '"rows >= 1000" or "schema strict" (quote each rule; a column with spaces in `backquotes`)'
)
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
# pandera's built-in check for each comparison
PANDERA_CHECKS = {">=": "ge", ">": "gt", "<=": "le", "<": "lt", "==": "eq", "!=": "ne"}
EXAMPLES = 3  # failing values shown per rule

# Kinds of rule
RANGE, COMPARE, ISIN, UNIQUE, NOTNULL, DTYPE, ROWS, STRICT = (
    "range",
    "compare",
    "isin",
    "unique",
    "notnull",
    "dtype",
    "rows",
    "strict",
)
ROW_KINDS = (RANGE, COMPARE, ISIN)  # settled value by value: they apply to a single request

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_OP = r">=|<=|==|!=|>|<"
_COLUMN = r"`[^`]+`|\"[^\"]+\"|'[^']+'|[^\s<>=!{}`\"']+"
_RULE = re.compile(rf"(?P<column>{_COLUMN})\s*(?P<rest>.*)", re.DOTALL)


@dataclass(frozen=True)
class Rule:
    """One rule, as data; ``text`` is its canonical spelling (what is stored and shown)."""

    kind: str
    column: str | None = None  # None: a rule on the whole frame (rows, schema strict)
    op: str = ""  # compare and rows: >= > <= < == !=; range (and rows between): between
    low: float | None = None
    high: float | None = None
    values: tuple[Any, ...] = ()  # isin
    share: float = 1.0  # notnull: the least share of non-null values
    dtype: str = ""  # dtype
    columns: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # strict: pinned

    @property
    def text(self) -> str:
        return KINDS[self.kind].text(self, _quote(self.column) if self.column is not None else "")

    @property
    def key(self) -> tuple[str, str, str]:
        """What a newer rule replaces: the same kind on the same column (and comparison)."""
        return (self.column or "", self.kind, self.op)

    def __str__(self) -> str:
        return self.text


def _quote(column: str) -> str:
    return column if re.fullmatch(r"[^\s<>=!{}`\"',]+", column) else f"`{column}`"


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value if re.fullmatch(r"[A-Za-z_][\w.-]*", value) else repr(value)
    return _num(value) if isinstance(value, float) else str(value)


def _error(text: str, problem: str) -> MLOpsUsageError:
    return MLOpsUsageError(f"cannot read rule {text!r}: {problem}; {RULE_USAGE}")


def _number(text: str, rule: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _error(rule, f"{text!r} is not a number") from None
    if math.isnan(value):
        raise _error(rule, "NaN is not a bound")
    return value


def _item(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(_NUMBER, text):
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_rule(text: str) -> Rule:
    """One rule from its text; anything else is a one-line usage error showing the forms."""
    rule = " ".join(str(text).split())
    if not rule:
        raise _error(text, "empty rule")
    if re.fullmatch(r"schema\s+strict", rule, re.IGNORECASE):
        return Rule(STRICT)
    rows = re.fullmatch(rf"rows\s+between\s+({_NUMBER})\s+({_NUMBER})", rule)
    if rows:
        low, high = _number(rows[1], rule), _number(rows[2], rule)
        if low > high:
            raise _error(rule, f"the lower bound {rows[1]} is above the upper {rows[2]}")
        return Rule(ROWS, op="between", low=low, high=high)
    rows = re.fullmatch(rf"rows\s*({_OP})\s*(\S+)", rule)
    if rows:
        return Rule(ROWS, op=rows[1], low=_number(rows[2], rule))
    if re.fullmatch(r"rows\b.*", rule):
        raise _error(rule, "a row count is 'rows OP N' or 'rows between A B'")
    match = _RULE.fullmatch(rule)
    if match is None:
        raise _error(rule, "it does not start with a column name")
    column = match["column"]
    if column[0] in "`'\"":
        column = column[1:-1]
    rest = match["rest"].strip()
    if not rest:
        raise _error(rule, f"nothing is said about column {column!r}")
    between = re.fullmatch(r"between\s+(\S+)\s+(\S+)", rest)
    if between:
        low, high = _number(between[1], rule), _number(between[2], rule)
        if low > high:
            raise _error(rule, f"the lower bound {between[1]} is above the upper {between[2]}")
        return Rule(RANGE, column, op="between", low=low, high=high)
    compare = re.fullmatch(rf"({_OP})\s*(\S+)", rest)
    if compare:
        return Rule(COMPARE, column, op=compare[1], low=_number(compare[2], rule))
    isin = re.fullmatch(r"in\s*\{(.*)\}", rest)
    if isin:
        items = [_item(part) for part in isin[1].split(",") if part.strip()]
        if not items:
            raise _error(rule, "the set of allowed values is empty")
        return Rule(ISIN, column, values=tuple(dict.fromkeys(items)))
    if rest.lower() == "unique":
        return Rule(UNIQUE, column)
    notnull = re.fullmatch(r"not\s+null(?:\s*>=\s*(\S+))?", rest, re.IGNORECASE)
    if notnull:
        share = 1.0 if notnull[1] is None else _number(notnull[1], rule)
        if not 0 < share <= 1:
            raise _error(rule, f"the share of non-null values {share:g} is not in (0, 1]")
        return Rule(NOTNULL, column, share=share)
    dtype = re.fullmatch(r"dtype\s+(\S+)", rest)
    if dtype:
        _pandas_dtype(dtype[1], rule)
        return Rule(DTYPE, column, dtype=dtype[1])
    word = rest.split()[0]
    raise _error(rule, f"unknown condition {word!r} on column {column!r}")


def _pandas_dtype(name: str, rule: str = "") -> Any:
    import pandas as pd

    try:
        return pd.api.types.pandas_dtype(name)
    except (TypeError, ValueError):
        raise _error(
            rule or name, f"{name!r} is not a pandas dtype (int64, float64, str...)"
        ) from None


def parse_rules(texts: Sequence[str]) -> list[Rule]:
    return [parse_rule(text) for text in texts]


# --- outcomes -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What checking one rule found: ``observed`` in words, and where it came from."""

    rule: Rule
    passed: bool
    observed: str
    from_manifest: bool = False


def from_manifest(rule: Rule, description: Description) -> Outcome | None:
    """The outcome when the manifest's statistics settle the rule, else None (read the data)."""
    columns = {c.name: c for c in description.columns if not c.index}
    return KINDS[rule.kind].from_manifest(rule, columns, description.rows)


def schema(rule: Rule) -> pa.DataFrameSchema:
    """The pandera schema that checks exactly this rule."""
    return KINDS[rule.kind].schema(rule)


def validate(
    rule: Rule, frame: pd.DataFrame, compiled: pa.DataFrameSchema | None = None
) -> Outcome:
    """Check ``rule`` on ``frame`` with pandera; the outcome says what failed, in words."""
    from pandera.errors import SchemaError, SchemaErrors

    kind = KINDS[rule.kind]
    try:
        (compiled or kind.schema(rule)).validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        missing = cases.loc[cases["check"].astype(str) == "column_in_dataframe", "failure_case"]
        if rule.column is not None and len(missing):
            return Outcome(rule, False, f"no column {', '.join(repr(str(c)) for c in missing)}")
        return Outcome(rule, False, kind.observed(rule, frame, cases))
    except SchemaError as error:  # pandera raises one error for some frame-level problems
        return Outcome(rule, False, str(error).splitlines()[0])
    return Outcome(rule, True, kind.observed(rule, frame, None))


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _same_dtype(a: str, b: str) -> bool:
    try:
        return bool(_pandas_dtype(a) == _pandas_dtype(b))
    except MLOpsUsageError:
        return a == b


# --- the kinds: how each is spelled, settled from a manifest, checked by pandera, reported ------
class Kind(ABC):
    """What one kind of rule does at each step; one instance per kind, registered in KINDS."""

    name = ""
    failing_value = "failing value"

    @abstractmethod
    def text(self, rule: Rule, column: str) -> str:
        """The rule as written."""

    @abstractmethod
    def from_manifest(self, rule: Rule, columns: Columns, rows: int | None) -> Outcome | None:
        """The outcome the manifest settles, or None when only the data can."""

    @abstractmethod
    def schema(self, rule: Rule) -> pa.DataFrameSchema:
        """The pandera schema that checks exactly this rule."""

    def observed(self, rule: Rule, frame: pd.DataFrame, cases: pd.DataFrame | None) -> str:
        """What ``frame`` shows, given pandera's failure cases (None: it passed)."""
        if cases is None:
            return "0 failing values"
        values = cases["failure_case"]
        shown = ", ".join(str(v) for v in list(dict.fromkeys(values.astype(str)))[:EXAMPLES])
        plural = "" if len(values) == 1 else "s"
        return f"{len(values):,} {self.failing_value}{plural} (e.g. {shown})"


class ColumnKind(Kind):
    """A rule on one column: a missing column fails it, the manifest settles nothing unless
    ``settle`` says, pandera checks it as the ``Column`` that ``column`` makes."""

    @abstractmethod
    def column(self, rule: Rule) -> pa.Column:
        """The pandera column check."""

    def settle(self, rule: Rule, column: ColumnSchema, rows: int | None) -> Outcome | None:
        return None  # pandera decides on the data

    def from_manifest(self, rule: Rule, columns: Columns, rows: int | None) -> Outcome | None:
        assert rule.column is not None
        column = columns.get(rule.column)
        if column is None:
            return Outcome(rule, False, f"no column {rule.column!r}", True)
        return self.settle(rule, column, rows)

    def schema(self, rule: Rule) -> pa.DataFrameSchema:
        import pandera.pandas as pa

        assert rule.column is not None
        return pa.DataFrameSchema({rule.column: self.column(rule)})


class Rows(Kind):
    name = ROWS

    def text(self, rule: Rule, column: str) -> str:
        if rule.op == "between":
            return f"rows between {_num(rule.low)} {_num(rule.high)}"
        return f"rows {rule.op} {_num(rule.low)}"

    @staticmethod
    def passes(rule: Rule, rows: int) -> bool:
        if rule.op == "between":
            return (rule.low or 0) <= rows <= (rule.high or 0)
        return COMPARISONS[rule.op](rows, rule.low)

    def from_manifest(self, rule: Rule, columns: Columns, rows: int | None) -> Outcome | None:
        if rows is None:
            return None
        return Outcome(rule, self.passes(rule, rows), f"{rows:,} rows", True)

    def schema(self, rule: Rule) -> pa.DataFrameSchema:
        import pandera.pandas as pa

        check = pa.Check(lambda df: self.passes(rule, len(df)), name=rule.text)
        return pa.DataFrameSchema(checks=check)

    def observed(self, rule: Rule, frame: pd.DataFrame, cases: pd.DataFrame | None) -> str:
        return f"{len(frame):,} rows"


class Strict(Kind):
    name = STRICT

    def text(self, rule: Rule, column: str) -> str:
        return "schema strict"

    @staticmethod
    def outcome(rule: Rule, actual: list[tuple[str, str]], from_manifest: bool) -> Outcome:
        pinned = dict(rule.columns)
        have = dict(actual)
        extra = [c for c in have if c not in pinned]
        missing = [c for c in pinned if c not in have]
        retyped = [
            f"{c} {have[c]} (was {t})"
            for c, t in pinned.items()
            if t and c in have and have[c] and not _same_dtype(have[c], t)
        ]
        problems = (
            ([f"extra columns {', '.join(extra)}"] if extra else [])
            + ([f"missing columns {', '.join(missing)}"] if missing else [])
            + ([f"changed dtypes {', '.join(retyped)}"] if retyped else [])
        )
        observed = "; ".join(problems) or f"{len(have)} columns as pinned"
        return Outcome(rule, not problems, observed, from_manifest)

    def from_manifest(self, rule: Rule, columns: Columns, rows: int | None) -> Outcome | None:
        return self.outcome(rule, [(c.name, c.type) for c in columns.values()], True)

    def schema(self, rule: Rule) -> pa.DataFrameSchema:
        import pandera.pandas as pa

        return pa.DataFrameSchema(
            {name: pa.Column(dtype or None, nullable=True) for name, dtype in rule.columns},
            strict=True,
        )

    def observed(self, rule: Rule, frame: pd.DataFrame, cases: pd.DataFrame | None) -> str:
        if cases is None:
            return f"{len(frame.columns)} columns as pinned"
        have = [(str(c), str(frame[c].dtype)) for c in frame.columns]
        return self.outcome(rule, have, False).observed


class Bounded(ColumnKind):
    """Range and comparisons: on numbers, the manifest's min and max settle them."""

    @abstractmethod
    def within(self, rule: Rule, low: float, high: float) -> bool:
        """Whether every value between ``low`` and ``high`` passes."""

    def settle(self, rule: Rule, column: ColumnSchema, rows: int | None) -> Outcome | None:
        low, high = column.stats.get("min"), column.stats.get("max")
        if rule.op == "!=" or not (_is_number(low) and _is_number(high)):
            return None  # strings, dates, all-null: pandera decides on the data
        return Outcome(
            rule, self.within(rule, low, high), f"min {_num(low)}, max {_num(high)}", True
        )


class Range(Bounded):
    name = RANGE

    def text(self, rule: Rule, column: str) -> str:
        return f"{column} between {_num(rule.low)} {_num(rule.high)}"

    def within(self, rule: Rule, low: float, high: float) -> bool:
        return rule.low <= low and high <= (rule.high or 0)  # type: ignore[operator]

    def column(self, rule: Rule) -> pa.Column:
        import pandera.pandas as pa

        return pa.Column(checks=pa.Check.in_range(rule.low, rule.high), nullable=True)


class Compare(Bounded):
    name = COMPARE

    def text(self, rule: Rule, column: str) -> str:
        return f"{column} {rule.op} {_num(rule.low)}"

    def within(self, rule: Rule, low: float, high: float) -> bool:
        if rule.op == "==":
            return low == high == rule.low
        extreme = low if rule.op in (">=", ">") else high  # the side the bound limits decides
        return COMPARISONS[rule.op](extreme, rule.low)

    def column(self, rule: Rule) -> pa.Column:
        import pandera.pandas as pa

        check = getattr(pa.Check, PANDERA_CHECKS[rule.op])(rule.low)
        return pa.Column(checks=check, nullable=True)


class IsIn(ColumnKind):
    name = ISIN

    def text(self, rule: Rule, column: str) -> str:
        return f"{column} in {{{', '.join(_value(v) for v in rule.values)}}}"

    def column(self, rule: Rule) -> pa.Column:
        import pandera.pandas as pa

        return pa.Column(checks=pa.Check.isin(list(rule.values)), nullable=True)


class Unique(ColumnKind):
    name = UNIQUE
    failing_value = "duplicated value"

    def text(self, rule: Rule, column: str) -> str:
        return f"{column} unique"

    def column(self, rule: Rule) -> pa.Column:
        import pandera.pandas as pa

        return pa.Column(unique=True, nullable=True)


class NotNull(ColumnKind):
    name = NOTNULL

    def text(self, rule: Rule, column: str) -> str:
        return f"{column} not null" + (f" >= {_num(rule.share)}" if rule.share < 1 else "")

    @staticmethod
    def outcome(rule: Rule, nulls: int, rows: int, from_manifest: bool) -> Outcome:
        present = 1.0 - nulls / rows if rows else 1.0
        observed = f"{nulls:,} nulls" + (f" (non-null share {present:.4g})" if nulls else "")
        return Outcome(rule, present >= rule.share, observed, from_manifest)

    def settle(self, rule: Rule, column: ColumnSchema, rows: int | None) -> Outcome | None:
        nulls = column.stats.get("nulls")
        # A numpy float column keeps NaN as a value, which the manifest's null count leaves
        # out and pandera counts as missing: read the data.
        if not isinstance(nulls, int) or rows is None or column.type.startswith("float"):
            return None
        return self.outcome(rule, int(nulls), rows, True)

    def column(self, rule: Rule) -> pa.Column:
        import pandera.pandas as pa

        if rule.share >= 1:
            return pa.Column(nullable=False)
        share = rule.share
        check = pa.Check(
            lambda s: bool(s.notna().mean() >= share) if len(s) else True,
            element_wise=False,
            ignore_na=False,
            name=rule.text,
        )
        return pa.Column(checks=check, nullable=True)

    def observed(self, rule: Rule, frame: pd.DataFrame, cases: pd.DataFrame | None) -> str:
        if cases is None and rule.share >= 1:
            return "0 nulls"
        nulls = int(frame[rule.column].isna().sum())
        return self.outcome(rule, nulls, len(frame), False).observed


class Dtype(ColumnKind):
    name = DTYPE

    def text(self, rule: Rule, column: str) -> str:
        return f"{column} dtype {rule.dtype}"

    def settle(self, rule: Rule, column: ColumnSchema, rows: int | None) -> Outcome | None:
        if not column.type:
            return None
        return Outcome(rule, _same_dtype(column.type, rule.dtype), f"dtype {column.type}", True)

    def column(self, rule: Rule) -> pa.Column:
        import pandera.pandas as pa

        return pa.Column(rule.dtype, nullable=True)

    def observed(self, rule: Rule, frame: pd.DataFrame, cases: pd.DataFrame | None) -> str:
        return f"dtype {frame[rule.column].dtype}"


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (Rows(), Strict(), Range(), Compare(), IsIn(), Unique(), NotNull(), Dtype())
}
