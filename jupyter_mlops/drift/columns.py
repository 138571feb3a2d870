"""Column typing and the per-column data every statistical test reads.

Typing follows Evidently 0.7 (``evidently.core.datasets.infer_column_type``), applied to the
current frame: floats are numerical; integers with at most 10 distinct values, booleans and
pandas categoricals are categorical; strings are categorical unless more than half the values are
distinct (then text, which we do not test). Unlike Evidently, unsigned and nullable (``Int64``,
``Float64``) columns are typed like their plain counterparts instead of being silently dropped.

Before testing, missing and infinite values are dropped from each side, as Evidently does, so
every count below is of finite values only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..errors import MLOpsUsageError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

NUMERICAL = "numerical"
CATEGORICAL = "categorical"
TEXT = "text"
UNTESTABLE = "untestable"

INTEGER_CARDINALITY_LIMIT = 10
FEW_VALUES = (
    5  # numerical columns with at most this many distinct values are tested like categories
)
BINNING_CARDINALITY = 20  # above this many reference values, binned tests use Sturges histograms


def column_type(values: pd.Series) -> str:
    """Evidently's type of one (current) column: numerical, categorical, text or untestable."""
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return CATEGORICAL
    if pd.api.types.is_float_dtype(dtype):
        return NUMERICAL
    if pd.api.types.is_integer_dtype(dtype):
        return CATEGORICAL if values.nunique() <= INTEGER_CARDINALITY_LIMIT else NUMERICAL
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        present = values.dropna()
        if present.empty or not (
            isinstance(present.iloc[0], str) and isinstance(present.iloc[-1], str)
        ):
            return UNTESTABLE
        return TEXT if present.nunique() > present.size * 0.5 else CATEGORICAL
    return UNTESTABLE


@dataclass
class PreparedColumn:
    """One column of both frames, cleaned, with the summaries every test needs (lazily)."""

    name: str
    type: str
    reference: Any  # numerical: sorted float64 ndarray; categorical: pd.Series without NaN
    current: Any

    @property
    def n_reference(self) -> int:
        return len(self.reference)

    @property
    def n_current(self) -> int:
        return len(self.current)

    @cached_property
    def frequencies(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(keys, reference counts, current counts) over the union of the values of both sides."""
        import numpy as np

        if self.type == NUMERICAL:
            ref_keys, ref_counts = _runs(self.reference)
            cur_keys, cur_counts = _runs(self.current)
            keys = np.union1d(ref_keys, cur_keys)
            return (
                keys,
                _spread(keys, ref_keys, ref_counts),
                _spread(keys, cur_keys, cur_counts),
            )
        import pandas as pd

        both = pd.concat([self.reference, self.current], ignore_index=True)
        codes, uniques = pd.factorize(both, sort=False)
        size = len(uniques)
        return (
            np.asarray(uniques, dtype=object),
            np.bincount(codes[: self.n_reference], minlength=size),
            np.bincount(codes[self.n_reference :], minlength=size),
        )

    @cached_property
    def n_values(self) -> int:
        """Distinct values of both sides together; exact up to FEW_VALUES + 1, capped above."""
        if self.type == NUMERICAL:
            ref_unique = _distinct(self.reference)
            cur_unique = _distinct(self.current)
            if ref_unique > FEW_VALUES or cur_unique > FEW_VALUES:
                return FEW_VALUES + 1
        return len(self.frequencies[0])

    @cached_property
    def n_reference_values(self) -> int:
        if self.type == NUMERICAL:
            return _distinct(self.reference)
        return int((self.frequencies[1] > 0).sum())

    @property
    def kind(self) -> str:
        """What the user sees: binary, discrete (numerical, few values), numerical, categorical."""
        if self.n_values <= 2:
            return "binary"
        if self.type == NUMERICAL and self.n_values <= FEW_VALUES:
            return "discrete"
        return self.type


def prepare(name: str, kind: str, reference: pd.Series, current: pd.Series) -> PreparedColumn:
    """Drop missing and infinite values; numerical columns become sorted float64 arrays."""
    import numpy as np
    import pandas as pd

    if kind == NUMERICAL:
        sides = []
        for label, values in (("reference", reference), ("current", current)):
            if not (
                pd.api.types.is_numeric_dtype(values.dtype)
                and not pd.api.types.is_bool_dtype(values.dtype)
            ):
                raise MLOpsUsageError(
                    f"column {name!r} is numerical in the current data but {values.dtype} in the "
                    f"{label} data; convert it (e.g. pd.to_numeric) or leave it out with --columns"
                )
            array = values.to_numpy(dtype=np.float64, na_value=np.nan)
            array = array[np.isfinite(array)]
            array.sort()
            sides.append(array)
        return PreparedColumn(name, kind, sides[0], sides[1])
    cleaned = [
        _drop_missing(
            values.astype(object) if isinstance(values.dtype, pd.CategoricalDtype) else values
        )
        for values in (reference, current)
    ]
    return PreparedColumn(name, kind, cleaned[0], cleaned[1])


def _drop_missing(values: pd.Series) -> pd.Series:
    import numpy as np

    if values.dtype.kind == "f" or values.dtype == object:
        values = values.replace([np.inf, -np.inf], np.nan)
    return values.dropna()


def _runs(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a sorted array and how often each occurs."""
    import numpy as np

    if sorted_values.size == 0:
        return sorted_values, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    return sorted_values[starts], np.diff(np.r_[starts, sorted_values.size])


def _distinct(sorted_values: np.ndarray) -> int:
    import numpy as np

    if sorted_values.size == 0:
        return 0
    return int(np.count_nonzero(sorted_values[1:] != sorted_values[:-1])) + 1


def _spread(keys: np.ndarray, side_keys: np.ndarray, side_counts: np.ndarray) -> np.ndarray:
    import numpy as np

    counts = np.zeros(keys.size, dtype=np.int64)
    counts[np.searchsorted(keys, side_keys)] = side_counts
    return counts


# pandas' inferred types, grouped into what a column holds; a column whose group differs between
# the two sides changed type (an upstream bug), which no distance between the sides can describe.
_FAMILIES = {
    "integer": "numbers",
    "floating": "numbers",
    "mixed-integer-float": "numbers",
    "decimal": "numbers",
    "complex": "numbers",
    "boolean": "booleans",
    "string": "strings",
    "bytes": "bytes",
    "datetime64": "datetimes",
    "datetime": "datetimes",
    "date": "dates",
    "timedelta64": "durations",
    "timedelta": "durations",
    "time": "times",
    "period": "periods",
    "interval": "intervals",
}


def value_family(values: pd.Series) -> str | None:
    """What the present values of a column are (numbers, strings, ...); None when none are."""
    import pandas as pd

    inferred = pd.api.types.infer_dtype(
        values.cat.categories if isinstance(values.dtype, pd.CategoricalDtype) else values,
        skipna=True,
    )
    if inferred == "empty":
        return None
    return _FAMILIES.get(inferred, "mixed values")


def has_values(values: pd.Series) -> bool:
    """Does the column hold any value a test can use (not missing, not infinite)?"""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return bool(np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan)).any())
    return bool(values.notna().any())


def broken_columns(
    reference: pd.DataFrame, current: pd.DataFrame, names: list[str]
) -> dict[str, str]:
    """Columns that are a failure of the data, not drift: no values on a side, or a changed type.

    They are not tested (a distance between, say, numbers and strings means nothing); the result
    lists them with the reason, and its headline says the data is broken.
    """
    broken: dict[str, str] = {}
    for name in names:
        empty = [
            label
            for label, frame in (("reference", reference), ("current", current))
            if not has_values(frame[name])
        ]
        if empty:
            where = " and ".join(empty)
            broken[name] = f"all values missing in the {where} data"
            continue
        before, after = value_family(reference[name]), value_family(current[name])
        if before != after:
            broken[name] = f"type changed: {before} in the reference, {after} in the current data"
    return broken
