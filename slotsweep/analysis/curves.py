"""Learning curves over seeds: per configuration and epoch, the mean of a per-epoch metric
(validation accuracy) over the seeds that logged that epoch, with its t-interval."""

from __future__ import annotations

from dataclasses import dataclass

from slotsweep.analysis.groups import ConfigurationRow
from slotsweep.analysis.intervals import Interval, t_interval

History = list[tuple[int, float]]  # (step = epoch, value)


@dataclass(frozen=True)
class Curve:
    """One configuration's curve: an interval (mean, band) per epoch."""

    row: ConfigurationRow
    epochs: list[int]
    points: list[Interval]


def curves(rows: list[ConfigurationRow], histories: dict[str, History]) -> list[Curve]:
    """The curve of every configuration whose finished runs have a history (by run id): at
    each epoch, the values of its runs at that step (a run that logged a step twice, as a
    resumed one may: its last value)."""
    found = []
    for row in rows:
        by_epoch: dict[int, list[float]] = {}
        for run_id in row.runs:
            for epoch, value in dict(histories.get(run_id, [])).items():
                by_epoch.setdefault(epoch, []).append(value)
        if by_epoch:
            epochs = sorted(by_epoch)
            found.append(Curve(row, epochs, [t_interval(by_epoch[e]) for e in epochs]))
    return found
