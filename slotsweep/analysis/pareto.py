"""Pareto fronts over configurations: the mean test accuracy over seeds (higher is better)
against the mean of a cost over seeds (lower is better). A configuration is on a front when no
other configuration is at least as accurate and at most as costly, and strictly better in one
of the two; configurations with equal means are on it together."""

from __future__ import annotations

from dataclasses import dataclass, field

from slotsweep.analysis.groups import ConfigurationRow

ACCURACY = "test_accuracy"
COSTS = ("model_size_bytes", "training_memory_bytes", "training_cost_flops")


def front(points: list[tuple[float, float]]) -> list[bool]:
    """For each (gain, cost) point, whether it is on the front: no other point has gain >= and
    cost <= with one of them strict."""
    return [
        not any((g >= gain and c <= cost) and (g > gain or c < cost) for g, c in points)
        for gain, cost in points
    ]


@dataclass
class ParetoRow:
    """One configuration's objectives (means over seeds; None where no trial logged one) and
    whether it lies on each front (by cost metric)."""

    row: ConfigurationRow
    objectives: dict[str, float | None]
    on_front: dict[str, bool] = field(default_factory=dict)


def pareto(
    rows: list[ConfigurationRow], accuracy: str = ACCURACY, costs: tuple[str, ...] = COSTS
) -> list[ParetoRow]:
    """Every configuration with its objectives and, per cost, whether it is on that front
    (a configuration lacking the accuracy or the cost is on no front of it)."""
    table = [
        ParetoRow(row, {metric: row.mean(metric) for metric in (accuracy, *costs)}) for row in rows
    ]
    for cost in costs:
        scored = [p for p in table if p.objectives[accuracy] is not None and p.objectives[cost]]
        marks = front([(p.objectives[accuracy], p.objectives[cost]) for p in scored])
        on = {id(p) for p, mark in zip(scored, marks, strict=True) if mark}
        for p in table:
            p.on_front[cost] = id(p) in on
    return table
