"""Pareto fronts over configurations: the mean test accuracy over seeds (higher is better)
against the mean of a cost over seeds (lower is better). A configuration is on a front when no
other configuration is at least as accurate and at most as costly, and strictly better in one
of the two; configurations with equal means are on it together."""

from __future__ import annotations

from dataclasses import dataclass, field

from slotsweep.analysis.groups import ConfigurationRow

ACCURACY = "test_accuracy"
COSTS = ("model_size_bytes", "training_memory_bytes", "training_cost_flops")


def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether `a` is at least as good as `b` in every objective and better in one (higher is
    better in each)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(
        x > y for x, y in zip(a, b, strict=True)
    )


def front_of(points: list[tuple[float, ...]]) -> list[bool]:
    """For each point (higher is better in each objective), whether no other dominates it
    (`dominates`, compared as arrays a row of points at a time: a search's 1,000
    configurations are a million comparisons)."""
    import numpy as np

    if not points:
        return []
    table = np.asarray(points, dtype=float)
    return [
        not bool(np.any(np.all(table >= point, axis=1) & np.any(table > point, axis=1)))
        for point in table
    ]


def front(points: list[tuple[float, float]]) -> list[bool]:
    """For each (gain, cost) point, whether it is on the front: no other point has gain >= and
    cost <= with one of them strict."""
    return front_of([(gain, -cost) for gain, cost in points])


def search_front(
    rows: list[ConfigurationRow], objectives: list[tuple[str, str]]
) -> list[ConfigurationRow]:
    """The configurations on the front of a multi-objective search: (metric, mode) pairs, each
    configuration by its means over seeds; one lacking an objective is on no front."""
    scored = [r for r in rows if all(r.mean(m) is not None for m, _ in objectives)]
    signed = [
        tuple(r.mean(m) * (1 if mode == "max" else -1) for m, mode in objectives) for r in scored
    ]
    return [row for row, on in zip(scored, front_of(signed), strict=True) if on]


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
