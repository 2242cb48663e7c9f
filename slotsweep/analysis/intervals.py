"""Confidence over seeds: the 95% t-interval of a mean, and three-valued verdicts read off it.

The interval of n values is mean +- t(0.975, n - 1) x s / sqrt(n), with s the sample standard
deviation (n - 1 in its denominator): Student's t with n - 1 degrees of freedom, which assumes
the seeds' values are independent draws from a normal distribution. One value has no interval;
it is reported as one seed, and no verdict is decided on it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95
METHOD = "t-interval, n-1 degrees of freedom"
ONE_SEED = "one seed: no interval"

HELD, NOT_HELD, INCONCLUSIVE = "held", "did not hold", "inconclusive"
WITHIN, ABOVE, BELOW = "within", "above", "below"


@dataclass(frozen=True)
class Interval:
    """A mean over n values and its interval; `low`/`high` are None for one value."""

    mean: float
    n: int
    std: float | None = None
    low: float | None = None
    high: float | None = None

    @property
    def defined(self) -> bool:
        return self.low is not None and self.high is not None

    def scaled(self, factor: float) -> Interval:
        """The same interval in another unit (fractions to percent: 100)."""

        def times(value: float | None) -> float | None:
            return None if value is None else value * factor

        return Interval(
            self.mean * factor, self.n, times(self.std), times(self.low), times(self.high)
        )

    def text(self, fmt: str = ".2f", signed: bool = False, unit: str = "") -> str:
        """`97.50 [96.91, 98.09]`, or `97.50 (one seed)`; `unit` follows the mean (`%`)."""
        sign = "+" if signed else ""
        mean = f"{self.mean:{sign}{fmt}}{unit}"
        if not self.defined:
            return f"{mean} (one seed)" if self.n == 1 else mean
        return f"{mean} [{self.low:{sign}{fmt}}, {self.high:{sign}{fmt}}]"


def t_interval(values: Iterable[float], level: float = LEVEL) -> Interval | None:
    """The mean of `values` with its t-interval at `level`; None for no values."""
    values = list(values)
    if not values:
        return None
    mean = statistics.fmean(values)
    if len(values) == 1:
        return Interval(mean, 1)
    std = statistics.stdev(values)
    half = float(stats.t.ppf((1 + level) / 2, len(values) - 1)) * std / math.sqrt(len(values))
    return Interval(mean, len(values), std, mean - half, mean + half)


def decide(interval: Interval | None, threshold: float = 0.0, above: bool = True) -> str:
    """A claim that the mean lies above (or below) `threshold`: held when the whole interval
    lies on the claimed side, did not hold when it lies wholly on the other, else inconclusive
    (an interval that touches or crosses the threshold, or one seed)."""
    if interval is None or not interval.defined:
        return INCONCLUSIVE
    low, high = (interval.low, interval.high) if above else (-interval.high, -interval.low)
    limit = threshold if above else -threshold
    if low > limit:
        return HELD
    if high < limit:
        return NOT_HELD
    return INCONCLUSIVE


def combine(verdicts: Iterable[str]) -> str:
    """A claim made of several (at every K): held when every part held, did not hold when some
    part did not, else inconclusive."""
    verdicts = list(verdicts)
    if verdicts and all(v == HELD for v in verdicts):
        return HELD
    return NOT_HELD if NOT_HELD in verdicts else INCONCLUSIVE


def against_reference(interval: Interval | None, value: float, margin: float) -> str:
    """Ours against a reported number: within when our whole interval lies inside value +-
    margin, above (below) when it lies wholly beyond value + margin (value - margin), else
    inconclusive (it crosses an edge of the band, or one seed)."""
    if interval is None or not interval.defined:
        return INCONCLUSIVE
    if value - margin <= interval.low and interval.high <= value + margin:
        return WITHIN
    if interval.low > value + margin:
        return ABOVE
    if interval.high < value - margin:
        return BELOW
    return INCONCLUSIVE
