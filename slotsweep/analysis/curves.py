"""Learning curves over seeds: per configuration and epoch, the mean of a per-epoch metric
(validation accuracy) over the seeds that logged that epoch, with its t-interval.

At most `CURVE_LIMIT` configurations are drawn: a fixed grid's few configurations all, a search's
hundreds only its best by the objective (a plot of 1,000 curves says nothing, and each curve is
one history query per run), and the figure says which (`curve_note`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from slotsweep.analysis.groups import OBJECTIVE, ConfigurationRow, best_note, best_rows
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
    rows: list[ConfigurationRow], objective: tuple[str, str] = OBJECTIVE, limit: int = CURVE_LIMIT
) -> list[ConfigurationRow]:
    """The configurations that get a curve, in the rows' order: of those with a finished run,
    every one when there are at most `limit`, else the best `limit` by the objective's mean
    (`best_rows`)."""
    return best_rows([row for row in rows if row.runs], objective, limit)


def curve_note(
    rows: list[ConfigurationRow], objective: tuple[str, str] = OBJECTIVE, limit: int = CURVE_LIMIT
) -> str:
    """What the curves leave out, said on the figure and the page ("" when nothing)."""
    candidates = sum(1 for row in rows if row.runs)
    return best_note(min(limit, candidates), candidates, objective)


def curves(
    rows: list[ConfigurationRow],
    histories: Mapping[str, History],
    objective: tuple[str, str] = OBJECTIVE,
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
