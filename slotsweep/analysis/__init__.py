"""What a sweep means, as a library on a list of trial records: `compare(records)` groups them
into configurations; `row_interval` gives a configuration's mean with its 95% t-interval over
seeds; `paired_rows` the per-seed difference of two configurations with its interval; `decide`,
`combine` and `against_reference` read three-valued verdicts off an interval; `pareto` the
fronts of accuracy against costs; `importance` Optuna's importance evaluators on the finished
trials; `curves` the learning curves over seeds from metric histories (of at most
`CURVE_LIMIT` configurations, the best). Nothing here needs Ray or MLflow (Optuna is imported
only by `importance`)."""

from __future__ import annotations

from slotsweep.analysis.curves import CURVE_LIMIT, Curve, curve_note, curve_rows, curves
from slotsweep.analysis.groups import (
    OBJECTIVE,
    ConfigurationRow,
    best_note,
    best_rows,
    compare,
    not_configuration,
    order_rows,
    reported_metrics,
    varying_settings,
)
from slotsweep.analysis.importance import MIN_TRIALS, Importance, importance
from slotsweep.analysis.intervals import (
    ABOVE,
    BELOW,
    HELD,
    INCONCLUSIVE,
    LEVEL,
    METHOD,
    NOT_HELD,
    WITHIN,
    Interval,
    against_reference,
    combine,
    decide,
    t_interval,
)
from slotsweep.analysis.paired import Paired, paired, paired_rows, seed_values
from slotsweep.analysis.pareto import (
    COSTS,
    ParetoRow,
    dominates,
    front,
    front_of,
    pareto,
    search_front,
)


def row_interval(row: ConfigurationRow, metric: str = "test_accuracy") -> Interval | None:
    """A configuration's mean of `metric` over its finished trials with its 95% t-interval."""
    return t_interval(row.values.get(metric, []))


STATS = ("mean", "std", "ci_low", "ci_high")  # a metric's columns in comparison.csv and the run


def row_stats(row: ConfigurationRow, metric: str) -> dict[str, float | None]:
    """`STATS` of `metric` over a configuration's finished trials: its mean, std and 95%
    t-interval (None where no trial logged it; the interval None with one seed too)."""
    interval = row_interval(row, metric)
    low, high = (interval.low, interval.high) if interval else (None, None)
    return dict(zip(STATS, (row.mean(metric), row.std(metric), low, high), strict=True))


__all__ = [
    "ABOVE",
    "BELOW",
    "COSTS",
    "HELD",
    "INCONCLUSIVE",
    "LEVEL",
    "METHOD",
    "MIN_TRIALS",
    "NOT_HELD",
    "OBJECTIVE",
    "STATS",
    "WITHIN",
    "ConfigurationRow",
    "CURVE_LIMIT",
    "Curve",
    "Importance",
    "Interval",
    "Paired",
    "ParetoRow",
    "against_reference",
    "best_note",
    "best_rows",
    "combine",
    "compare",
    "curve_note",
    "curve_rows",
    "curves",
    "decide",
    "dominates",
    "front",
    "front_of",
    "search_front",
    "importance",
    "not_configuration",
    "order_rows",
    "paired",
    "paired_rows",
    "pareto",
    "reported_metrics",
    "row_interval",
    "row_stats",
    "seed_values",
    "t_interval",
    "varying_settings",
]
