"""Paired comparisons over seeds: two configurations that ran the same seeds share their random
values and their data order, so their difference is measured seed by seed, and the interval is
that of the per-seed differences (not of two independent means)."""

from __future__ import annotations

from dataclasses import dataclass

from slotsweep.analysis.groups import ConfigurationRow
from slotsweep.analysis.intervals import Interval, t_interval

SeedValues = dict[str, float]


def differences(a: SeedValues, b: SeedValues) -> SeedValues:
    """{seed: a - b} over the seeds both have."""
    return {seed: a[seed] - b[seed] for seed in sorted(set(a) & set(b), key=_seed_order)}


def _seed_order(seed: str) -> tuple[int, str]:
    return (int(seed), "") if seed.lstrip("-").isdigit() else (0, seed)


def seed_values(row: ConfigurationRow, metric: str, scale: float = 1.0) -> SeedValues:
    """A row's {seed: value} of `metric`, times `scale` (100: fractions to percent)."""
    return {seed: value * scale for seed, value in row.seed_values(metric).items()}


@dataclass(frozen=True)
class Paired:
    """The per-seed differences a - b and the interval of their mean (None without a shared
    seed)."""

    differences: SeedValues
    interval: Interval | None

    @property
    def seeds(self) -> int:
        return len(self.differences)

    def text(self, fmt: str = ".2f") -> str:
        """`+1.00 [+0.40, +1.60] (3 seeds)`, `+1.00 (one seed)`, or `no shared seed`."""
        if self.interval is None:
            return "no shared seed"
        more = f" ({self.seeds} seeds)" if self.interval.defined else ""
        return self.interval.text(fmt, signed=True) + more


def paired(a: SeedValues, b: SeedValues) -> Paired:
    """The paired difference a - b over the seeds both ran."""
    diffs = differences(a, b)
    return Paired(diffs, t_interval(diffs.values()))


def paired_rows(
    a: ConfigurationRow,
    b: ConfigurationRow,
    metric: str = "test_accuracy",
    metric_b: str | None = None,
    scale: float = 1.0,
) -> Paired:
    """`a`'s `metric` minus `b`'s (`metric_b`, default the same) seed by seed."""
    return paired(seed_values(a, metric, scale), seed_values(b, metric_b or metric, scale))
