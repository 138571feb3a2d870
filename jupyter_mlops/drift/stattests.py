"""The drift tests, by Evidently's names, with Evidently 0.7's formulas and defaults.

Each test takes a :class:`PreparedColumn` (sorted finite arrays for numerical columns, value
counts for categories) and returns its score. The formulas follow
``evidently.legacy.calculations.stattests`` exactly: the binning (Sturges edges over both sides
when the reference has more than 20 distinct values, value frequencies otherwise), the smoothing of
empty bins for PSI and K-L, and each test's comparison with its threshold. Only the arithmetic is
reorganised: one sort per side serves the Wasserstein distance, K-S, the distinct-value counts and
the histograms, where Evidently re-sorts and re-counts with pandas for every test, three times.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import MLOpsUsageError
from .columns import BINNING_CARDINALITY, CATEGORICAL, FEW_VALUES, NUMERICAL, PreparedColumn

if TYPE_CHECKING:
    import numpy as np

SMALL_REFERENCE = 1000  # at most this many reference values: p-value tests; above: distances


@dataclass(frozen=True)
class StatTest:
    name: str
    title: str
    score: Callable[[PreparedColumn], float]
    default_threshold: float
    is_p_value: bool
    types: tuple[str, ...] = (NUMERICAL, CATEGORICAL)
    inclusive: bool = False  # p-value tests: drift when p <= threshold (K-S) or p < threshold

    def detects(self, score: float, threshold: float) -> bool:
        if self.is_p_value:
            return score <= threshold if self.inclusive else score < threshold
        return score >= threshold


def wasserstein_normed(column: PreparedColumn) -> float:
    """First Wasserstein distance divided by the reference std (floored at 0.001).

    On sorted samples the distance is the integral of |F_ref^-1(t) - F_cur^-1(t)| over t in
    [0, 1]; the quantile functions are step functions with steps at i/n and j/m, so the integral
    is a sum over the merged step positions (integers on the common denominator n*m), and simply
    the mean absolute difference of the sorted samples when n == m.
    """
    import numpy as np

    ref, cur = column.reference, column.current
    n, m = ref.size, cur.size
    if n == m:
        distance = float(np.mean(np.abs(ref - cur)))
    else:
        steps = np.concatenate([np.arange(n, dtype=np.int64) * m, np.arange(m, dtype=np.int64) * n])
        steps.sort(kind="stable")  # two sorted runs: a linear merge
        widths = np.diff(np.append(steps, n * m))
        distance = float(np.dot(np.abs(ref[steps // m] - cur[steps // n]), widths)) / (n * m)
    return distance / max(float(np.std(ref)), 0.001)


EXACT_KS_LIMIT = 10_000  # scipy's ks_2samp 'auto' mode: exact p-values up to this sample size


def ks_p_value(column: PreparedColumn) -> float:
    """Two-sided two-sample K-S p-value, as ``scipy.stats.ks_2samp`` computes it.

    Small samples go to scipy (exact distribution); above its exact limit scipy uses Smirnov's
    asymptotic ``kstwo.sf(D, round(n*m/(n+m)))``, which we evaluate on the D found from the
    already sorted samples instead of letting scipy sort them again.
    """
    import numpy as np
    from scipy.stats import ks_2samp, kstwo

    ref, cur = column.reference, column.current
    n, m = ref.size, cur.size
    if max(n, m) <= EXACT_KS_LIMIT:
        return float(ks_2samp(ref, cur)[1])
    points = np.concatenate([ref, cur])
    gaps = (
        np.searchsorted(ref, points, side="right") / n
        - np.searchsorted(cur, points, side="right") / m
    )
    d = max(float(np.clip(-gaps.min(), 0, 1)), float(gaps.max()))
    big, small = max(float(n), float(m)), min(float(n), float(m))
    return float(np.clip(kstwo.sf(d, np.round(big * small / (big + small))), 0, 1))


def chisquare_p_value(column: PreparedColumn) -> float:
    import numpy as np
    from scipy.stats import chisquare

    _, ref_counts, cur_counts = column.frequencies
    expected = ref_counts * (column.n_current / column.n_reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(chisquare(cur_counts, expected)[1])


def z_p_value(column: PreparedColumn) -> float:
    """Two-proportion Z-test of 'is not the smallest value'; 1.0 if both hold one same value."""
    import numpy as np
    from scipy.stats import norm

    keys, ref_counts, cur_counts = column.frequencies
    if len(keys) == 1:
        return 1.0
    first = min(range(len(keys)), key=lambda i: _sort_key(keys[i]))
    n1, n2 = column.n_reference, column.n_current
    p1 = (n1 - ref_counts[first]) / n1
    p2 = (n2 - cur_counts[first]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - norm.cdf(np.abs(z))))


def _sort_key(value: object) -> tuple[int, object]:
    # Evidently sorts the keys with sorted(); numbers before strings keeps mixed columns sortable.
    return (0, value) if isinstance(value, numbers.Number) else (1, str(value))


def binned_shares(column: PreparedColumn, *, fill_empty: bool) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's ``get_binned_data``: the shares of each side per bin (or per value)."""
    import numpy as np

    if column.type == NUMERICAL and column.n_reference_values > BINNING_CARDINALITY:
        edges = np.histogram_bin_edges(
            np.concatenate([column.reference, column.current]), bins="sturges"
        )
        ref_share = histogram(column.reference, edges) / column.n_reference
        cur_share = histogram(column.current, edges) / column.n_current
    else:
        _, ref_counts, cur_counts = column.frequencies
        ref_share = ref_counts / column.n_reference
        cur_share = cur_counts / column.n_current
    if fill_empty:
        ref_share, cur_share = _fill_empty(ref_share), _fill_empty(cur_share)
    return ref_share, cur_share


def histogram(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram`` counts (half-open bins, the last one closed) of already sorted values."""
    import numpy as np

    inner = np.searchsorted(sorted_values, edges[1:-1], side="left")
    return np.diff(np.concatenate([[0], inner, [sorted_values.size]]))


def _fill_empty(shares: np.ndarray) -> np.ndarray:
    smallest = shares[shares != 0].min()
    filled = shares.astype(float, copy=True)
    filled[filled == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return filled


def jensenshannon_distance(column: PreparedColumn) -> float:
    from scipy.spatial.distance import jensenshannon

    ref_share, cur_share = binned_shares(column, fill_empty=False)
    return float(jensenshannon(ref_share, cur_share))


def psi(column: PreparedColumn) -> float:
    import numpy as np

    ref_share, cur_share = binned_shares(column, fill_empty=True)
    return float(np.sum((ref_share - cur_share) * np.log(ref_share / cur_share)))


def kl_divergence(column: PreparedColumn) -> float:
    from scipy.stats import entropy

    ref_share, cur_share = binned_shares(column, fill_empty=True)
    return float(entropy(ref_share, cur_share))


def hellinger_distance(column: PreparedColumn) -> float:
    """Categorical: over value shares; numerical: over density histograms on Sturges edges of the
    distinct values (Evidently's definition, which differs from the binning of the other tests)."""
    import numpy as np

    if column.type == CATEGORICAL:
        _, ref_counts, cur_counts = column.frequencies
        overlap = float(
            np.sum(np.sqrt((ref_counts / column.n_reference) * (cur_counts / column.n_current)))
        )
    else:
        keys = column.frequencies[0]
        edges = np.histogram_bin_edges(keys, bins="sturges")
        widths = np.diff(edges)
        ref_density = histogram(column.reference, edges) / widths / column.n_reference
        cur_density = histogram(column.current, edges) / widths / column.n_current
        bin_width = (edges.max() - edges.min()) / (len(edges) - 1)
        overlap = float(np.sum(np.sqrt(ref_density * cur_density) * bin_width))
    return float(np.sqrt(1 - np.clip(overlap, 0, 1)))


TESTS: dict[str, StatTest] = {
    t.name: t
    for t in (
        StatTest(
            "wasserstein",
            "Wasserstein distance (normed)",
            wasserstein_normed,
            0.1,
            is_p_value=False,
            types=(NUMERICAL,),
        ),
        StatTest("jensenshannon", "Jensen-Shannon distance", jensenshannon_distance, 0.1, False),
        StatTest("ks", "K-S p_value", ks_p_value, 0.05, True, types=(NUMERICAL,), inclusive=True),
        StatTest(
            "chisquare", "chi-square p_value", chisquare_p_value, 0.05, True, types=(CATEGORICAL,)
        ),
        StatTest("z", "Z-test p_value", z_p_value, 0.05, True, types=(CATEGORICAL,)),
        StatTest("psi", "PSI", psi, 0.1, False),
        StatTest("kl_div", "Kullback-Leibler divergence", kl_divergence, 0.1, False),
        StatTest("hellinger", "Hellinger distance", hellinger_distance, 0.1, False),
    )
}


def default_test(column: PreparedColumn) -> StatTest:
    """Evidently's DataDriftPreset choice, by reference size, type and distinct values."""
    few = column.n_values <= FEW_VALUES
    if column.n_reference <= SMALL_REFERENCE:
        if column.type == NUMERICAL and not few:
            return TESTS["ks"]
        return TESTS["chisquare" if column.n_values > 2 else "z"]
    if column.type == NUMERICAL and not few:
        return TESTS["wasserstein"]
    return TESTS["jensenshannon"]


def named_test(name: str, column: PreparedColumn) -> StatTest:
    """A test chosen by the user, checked against the column's type as Evidently does."""
    test = TESTS.get(name)
    if test is None:
        raise MLOpsUsageError(f"unknown drift test {name!r}; choose one of: {', '.join(TESTS)}")
    if column.type not in test.types:
        raise MLOpsUsageError(
            f"test {name!r} applies to {' and '.join(test.types)} columns, but {column.name!r} is "
            f"{column.type}; pick another test for it (e.g. {column.name}=psi)"
        )
    return test
