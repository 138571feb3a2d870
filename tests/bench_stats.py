"""Statistics the benchmarks share: a median with a bootstrap interval, and its verdict."""

from __future__ import annotations

import random
import statistics

RESAMPLES = 4000


def paired_order(round_: int, first: str, second: str) -> tuple[str, str]:
    """The two sides of a paired round, in an order swapped every round."""
    return (first, second) if round_ % 2 == 0 else (second, first)


def median_interval(values: list[float], seed: int = 16) -> tuple[float, float, float]:
    """(median, 2.5th and 97.5th percentile of the bootstrapped median)."""
    draw = random.Random(seed)
    medians = sorted(
        statistics.median(draw.choices(values, k=len(values))) for _ in range(RESAMPLES)
    )
    return (
        statistics.median(values),
        medians[int(0.025 * RESAMPLES)],
        medians[int(0.975 * RESAMPLES) - 1],
    )


def verdict(low: float, high: float, target: float, *, at_most: bool = False) -> str:
    """Verdict: "met" when the whole interval is on the target's good side, "NOT met" when
    all of it is on the other side, else "not settled". The good side is above ``target``, or
    below it with ``at_most``.
    """
    if at_most:
        low, high, target = -high, -low, -target
    if low >= target:
        return "met"
    if high < target:
        return "NOT met"
    return "not settled"
