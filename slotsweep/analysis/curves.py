"""Learning curves over seeds: per configuration and epoch, the mean of a per-epoch metric
(validation accuracy) over the seeds that logged that epoch, with its t-interval.

At most `CURVE_LIMIT` configurations are drawn: a fixed grid's few configurations all, a search's
hundreds only its best by the objective (a plot of 1,000 curves says nothing, and each curve is
one history query per run), and the figure says which (`curve_note`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from slotsweep.analysis.groups import ConfigurationRow
from slotsweep.analysis.intervals import Interval, t_interval

History = list[tuple[int, float]]  # (step = epoch, value)
CURVE_LIMIT = 10  # configurations with a learning curve (the best by the objective beyond it)


@dataclass(frozen=True)
class Curve:
    """One configuration's curve: an interval (mean, band) per epoch."""

    row: ConfigurationRow
    epochs: list[int]
    points: list[Interval]


def curve_rows(
    rows: list[ConfigurationRow],
    objective: tuple[str, str] = ("best_val_accuracy", "max"),
    limit: int = CURVE_LIMIT,
) -> list[ConfigurationRow]:
    """The configurations that get a curve, in the rows' order: every one with a finished run
    when there are at most `limit`, else the best `limit` by the mean of the objective (metric,
    mode); a configuration without the objective comes after every one with it."""
    candidates = [row for row in rows if row.runs]
    if len(candidates) <= limit:
        return candidates
    metric, mode = objective
    sign = -1.0 if mode == "max" else 1.0

    def rank(indexed: tuple[int, ConfigurationRow]) -> tuple:
        index, row = indexed
        mean = row.mean(metric)
        return (mean is None, 0.0 if mean is None else sign * mean, index)

    best = sorted(enumerate(candidates), key=rank)[:limit]
    return [row for _, row in sorted(best, key=lambda indexed: indexed[0])]


def curve_note(
    rows: list[ConfigurationRow],
    objective: tuple[str, str] = ("best_val_accuracy", "max"),
    limit: int = CURVE_LIMIT,
) -> str:
    """What the curves leave out, said on the figure and the page ("" when nothing)."""
    candidates = sum(1 for row in rows if row.runs)
    if candidates <= limit:
        return ""
    metric, mode = objective
    return f"the best {limit} of {candidates} configurations by {metric} ({mode})"


def curves(
    rows: list[ConfigurationRow],
    histories: Mapping[str, History],
    objective: tuple[str, str] = ("best_val_accuracy", "max"),
    limit: int = CURVE_LIMIT,
) -> list[Curve]:
    """The curve of each configuration `curve_rows` picks whose finished runs have a history
    (by run id; only those runs' histories are looked up): at each epoch, the values of its
    runs at that step (a run that logged a step twice, as a resumed one may: its last value)."""
    found = []
    for row in curve_rows(rows, objective, limit):
        by_epoch: dict[int, list[float]] = {}
        for run_id in row.runs:
            for epoch, value in dict(histories.get(run_id, [])).items():
                by_epoch.setdefault(epoch, []).append(value)
        if by_epoch:
            epochs = sorted(by_epoch)
            found.append(Curve(row, epochs, [t_interval(by_epoch[e]) for e in epochs]))
    return found
