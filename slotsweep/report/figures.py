"""The figure that fits a study, chosen by what the study varies, drawn beside the paper's numbers.

Every figure is written twice: as a PNG and as a CSV of exactly the values it plots (one line
per point: series, x, y, the spread, seeds, the paper's value), so that what a figure shows can
be checked without reading pixels.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from slotsweep.analysis import ConfigurationRow, varying_settings
from slotsweep.report.findings import accuracy
from slotsweep.report.paper import paper_match, percent

SELECTION_NAMES = {"greedy": "GS", "probabilistic": "PS"}


@dataclass
class Point:
    """One plotted value (y in %), the paper's beside it where there is one."""

    series: str
    x: float | str
    y: float
    y_std: float
    seeds: int
    paper_y: float | None = None
    paper_precision: float | None = None
    configuration: str = ""  # the row as `row_label` names it among the study's rows
    row: ConfigurationRow | None = field(default=None, repr=False)


@dataclass
class Figure:
    """A drawn figure: its name (file stem), title and the points it plots."""

    name: str
    title: str
    points: list[Point] = field(default_factory=list)
    png: Path | None = None
    csv: Path | None = None


def _point(
    row: ConfigurationRow,
    series: str,
    x: float | str,
    metric: str = "test_accuracy",
    with_paper: bool = True,
) -> Point | None:
    value = percent(row, metric)
    if value is None:
        return None
    paper = paper_match(row) if with_paper else None
    return Point(
        series,
        x,
        value[0],
        value[1],
        row.finished,
        None if paper is None else paper.value,
        None if paper is None else paper.precision,
        row=row,
    )


def _slots(rows: list[ConfigurationRow]) -> list[ConfigurationRow]:
    return [r for r in rows if r.settings.get("method") == "slot" and percent(r) is not None]


def _baselines(rows: list[ConfigurationRow]) -> list[ConfigurationRow]:
    return [r for r in rows if r.settings.get("method") == "dense" and percent(r) is not None]


def _series_name(row: ConfigurationRow, keys: list[str]) -> str:
    s = row.settings
    parts = [SELECTION_NAMES.get(s.get(k, ""), s.get(k, "")) for k in keys if k in s]
    return " ".join(p for p in parts if p) or s.get("method", "")


def _k_points(rows: list[ConfigurationRow], series_keys: list[str]) -> list[Point]:
    points = [_point(r, _series_name(r, series_keys), int(r.settings["k"])) for r in _slots(rows)]
    points += [
        _point(r, f"{_series_name(r, ['arch'])} weight-trained".strip(), "baseline")
        for r in _baselines(rows)
    ]
    return sorted(
        (p for p in points if p is not None),
        key=lambda p: (p.x == "baseline", p.series, 0 if p.x == "baseline" else p.x),
    )


def by_series(points: list[Point]) -> dict[str, list[Point]]:
    """The points of each series, series in the order they first appear."""
    grouped: dict[str, list[Point]] = defaultdict(list)
    for p in points:
        grouped[p.series].append(p)
    return grouped


def accuracy_vs_k(rows: list[ConfigurationRow], title: str = "") -> Figure | None:
    """Test accuracy against K per series (arch, selection), the weight-trained band, the paper."""
    if not _slots(rows):
        return None
    keys = [k for k in varying_settings(_slots(rows)) if k in ("arch", "selection", "dataset")]
    figure = Figure("accuracy_vs_k", title or "test accuracy against K")
    figure.points = _k_points(rows, keys or ["selection"])
    return figure


def sharing_vs_k(rows: list[ConfigurationRow], title: str = "") -> Figure | None:
    """Test accuracy against K per sharing mode of the random values."""
    if not _slots(rows):
        return None
    figure = Figure("sharing_vs_k", title or "sharing of the random values against K")
    figure.points = _k_points(rows, ["sharing"])
    for p in figure.points:
        p.series = f"sharing {p.series}" if p.x != "baseline" else p.series
    return figure


def gs_vs_ps(rows: list[ConfigurationRow], title: str = "") -> Figure | None:
    """GS and PS side by side per K (bars: ours; crosses: the paper)."""
    slots = [r for r in _slots(rows) if r.settings.get("sharing", "none") == "none"]
    if len({r.settings.get("selection") for r in slots}) < 2:
        return None
    figure = Figure("gs_vs_ps", title or "greedy (GS) against probabilistic (PS) selection")
    points = [
        _point(
            r,
            SELECTION_NAMES.get(r.settings["selection"], r.settings["selection"]),
            int(r.settings["k"]),
        )
        for r in slots
    ]
    figure.points = sorted((p for p in points if p), key=lambda p: (p.series, p.x))
    return figure


def accuracy_vs_cost(rows: list[ConfigurationRow], title: str = "") -> Figure | None:
    """Test accuracy against training FLOPs, one line per method (and arch); a finetuned slot
    machine at its accuracy after finetuning and the cost of both phases."""
    usable = [r for r in rows if accuracy(r) is not None and r.mean("training_cost_flops")]
    if not usable:
        return None
    keys = [k for k in varying_settings(usable) if k == "arch"]
    figure = Figure("accuracy_vs_cost", title or "test accuracy against training cost")
    for row in usable:
        tuned = row.mean("finetune_test_accuracy") is not None
        name = "slot + finetuning" if tuned else row.settings["method"]
        metric = "finetune_test_accuracy" if tuned else "test_accuracy"
        point = _point(
            row,
            " ".join([name] + [row.settings[k] for k in keys]),
            row.mean("training_cost_flops") * 1e-12,
            metric,
            with_paper=False,
        )
        figure.points.append(point)
    figure.points.sort(key=lambda p: (p.series, p.x))
    return figure


def finetune_split(rows: list[ConfigurationRow], title: str = "") -> Figure | None:
    """For each total of epochs, accuracy after finetuning against the slot machine's share of
    the epochs; weight training alone for that total at share 0."""
    tuned = [r for r in rows if r.mean("finetune_test_accuracy") is not None]
    if not tuned:
        return None
    figure = Figure("finetune_split", title or "finetuning: the split of a fixed total of epochs")
    totals = set()
    for row in tuned:
        slot, extra = int(row.settings["epochs"]), int(row.settings["finetune_epochs"])
        totals.add(slot + extra)
        figure.points.append(
            _point(
                row,
                f"total {slot + extra} epochs",
                slot / (slot + extra),
                "finetune_test_accuracy",
                with_paper=False,
            )
        )
    for row in _baselines(rows):
        total = int(row.settings["epochs"])
        if total in totals:
            figure.points.append(_point(row, f"total {total} epochs", 0.0, with_paper=False))
    figure.points.sort(key=lambda p: (int(p.series.split()[1]), p.x))
    return figure


def lambda_lr_heatmap(rows: list[ConfigurationRow], title: str = "") -> Figure | None:
    """Test accuracy over score_lambda (rows) x lr (columns)."""
    slots = [r for r in _slots(rows) if r.settings.get("score_lambda") not in (None, "auto")]
    if (
        len({r.settings["score_lambda"] for r in slots}) < 2
        or len({r.settings["lr"] for r in slots}) < 2
    ):
        return None
    figure = Figure("lambda_lr_heatmap", title or "score initialisation lambda x learning rate")
    points = [
        _point(
            r,
            f"lambda {float(r.settings['score_lambda']):g}",
            float(r.settings["lr"]),
            with_paper=False,
        )
        for r in slots
    ]
    figure.points = sorted(points, key=lambda p: (float(p.series.split()[1]), p.x))
    return figure


def storage(rows: list[ConfigurationRow], title: str = "") -> Figure | None:
    """Test accuracy against inference storage, per method: slot machines by K, edge-popup by
    its kept fraction, the weight-trained network."""
    usable = [r for r in rows if percent(r) is not None and r.mean("model_size_bytes")]
    if not any(r.settings.get("method") == "edge_popup" for r in usable):
        return None
    figure = Figure("accuracy_vs_storage", title or "test accuracy against inference storage")
    for row in usable:
        figure.points.append(
            _point(
                row, row.settings["method"], row.mean("model_size_bytes") / 1e3, with_paper=False
            )
        )
    figure.points.sort(key=lambda p: (p.series, p.x))
    return figure


Builder = Callable[[list[ConfigurationRow], str], "Figure | None"]


def figure_builders(rows: list[ConfigurationRow]) -> list[Builder]:
    """The figures that fit what the rows vary (the most specific experiment decides)."""
    varied = set(varying_settings(rows))
    slot_varied = set(varying_settings(_slots(rows))) if _slots(rows) else set()
    methods = {r.settings.get("method") for r in rows}
    if {"score_lambda", "lr"} <= slot_varied:
        return [lambda_lr_heatmap]
    if any(r.mean("finetune_test_accuracy") is not None for r in rows):
        return [finetune_split, accuracy_vs_cost]
    if "edge_popup" in methods:
        return [storage]
    if "epochs" in varied and "k" not in slot_varied:
        return [accuracy_vs_cost]
    if "sharing" in slot_varied:
        return [sharing_vs_k]
    return [accuracy_vs_k, gs_vs_ps]
