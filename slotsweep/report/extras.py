"""The report's analyses beyond the comparison: Pareto fronts (`pareto.csv`, a figure per
front), settings' importance (`importance.csv`, a figure) and learning curves over seeds
(`learning_curves.csv`, a figure). Each writes its CSV and its PNG into the report's folder."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from slotsweep.analysis import (
    COSTS,
    MIN_TRIALS,
    OBJECTIVE,
    ConfigurationRow,
    Curve,
    Importance,
    ParetoRow,
    curve_note,
    curves,
    importance,
    pareto,
    search_front,
)
from slotsweep.report.drawing import pyplot, save_figure
from slotsweep.report.figures import Figure
from slotsweep.report.paper import label_keys, row_label

COST_LABELS = {
    "model_size_bytes": "model size (bytes)",
    "training_memory_bytes": "training memory (bytes)",
    "training_cost_flops": "training cost (FLOP)",
}


@dataclass
class Extras:
    """What the analyses found, for the page and the summary, and the files they wrote."""

    fronts: list[ParetoRow] = field(default_factory=list)
    importance: list[Importance] = field(default_factory=list)
    importance_note: str = ""
    curves: list[Curve] = field(default_factory=list)
    curves_note: str = ""  # which configurations the curves leave out, if any
    search_objectives: list[tuple[str, str]] = field(default_factory=list)
    search_front: list[ConfigurationRow] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def write_pareto(rows: list[ConfigurationRow], out: Path, extras: Extras) -> None:
    """pareto.csv (every configuration: settings, objectives as means over seeds, `front_COST`)
    and pareto_COST.png for each cost some configuration has."""
    table = pareto(rows)
    keys, labels = sorted({k for r in rows for k in r.settings}), label_keys(rows)
    path = out / "pareto.csv"
    objectives = ["test_accuracy", *COSTS]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["configuration", *keys, "seeds", *objectives, *(f"front_{c}" for c in COSTS)]
        )
        for p in table:
            writer.writerow(
                [row_label(p.row, labels), *(p.row.settings.get(k, "") for k in keys)]
                + [p.row.finished]
                + [p.objectives[m] for m in objectives]  # None: an empty cell
                + [p.on_front[c] for c in COSTS]
            )
    extras.fronts, extras.files = table, [*extras.files, path]
    for cost in COSTS:
        if any(p.on_front[cost] for p in table):
            figure = Figure(f"pareto_{cost}", f"test accuracy against {COST_LABELS[cost]}")
            figure.png, figure.csv = out / f"{figure.name}.png", out / f"{figure.name}.csv"
            _draw_front(table, cost, labels, figure)
            extras.figures.append(figure)
            extras.files += [figure.png, figure.csv]


def _draw_front(table: list[ParetoRow], cost: str, labels: list[str], figure: Figure) -> None:
    """The figure, and beside it (as every figure) a CSV of exactly the values it plots."""
    scored = [p for p in table if p.objectives[cost] and p.objectives["test_accuracy"] is not None]
    with figure.csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["configuration", cost, "test_accuracy_percent", "on_front"])
        writer.writerows(
            (
                row_label(p.row, labels),
                p.objectives[cost],
                100 * p.objectives["test_accuracy"],
                p.on_front[cost],
            )
            for p in scored
        )
    draw_scatter_front(
        [
            (p.objectives[cost], 100 * p.objectives["test_accuracy"], row_label(p.row, labels))
            for p in scored
        ],
        [p.on_front[cost] for p in scored],
        (COST_LABELS[cost], "test accuracy (%)"),
        figure,
    )


def draw_scatter_front(
    points: list[tuple[float, float, str]],
    on_front: list[bool],
    axis_labels: tuple[str, str],
    figure: Figure,
) -> None:
    """Every configuration as a grey dot, the front as a step line with its members named."""
    plt = pyplot()
    fig, axes = plt.subplots(figsize=(6.4, 4.2))
    axes.scatter(
        [x for x, _, _ in points],
        [y for _, y, _ in points],
        color="0.6",
        label="configurations (mean over seeds)",
    )
    on = sorted((p for p, mark in zip(points, on_front, strict=True) if mark))
    axes.step(
        [x for x, _, _ in on],
        [y for _, y, _ in on],
        where="post",
        color="C3",
        marker="o",
        label="front",
    )
    for x, y, label in on:
        axes.annotate(label, (x, y), fontsize=7, xytext=(3, -9), textcoords="offset points")
    xs = [x for x, _, _ in points]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 20:
        axes.set_xscale("log")
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    axes.legend(fontsize=7)
    save_figure(fig, axes, figure, figure.png)


def write_importance(
    rows: list[ConfigurationRow],
    out: Path,
    extras: Extras,
    objective: tuple[str, str],
    min_trials: int = MIN_TRIALS,
) -> None:
    """importance.csv (setting, importance, evaluator) and importance.png, for a study with at
    least `min_trials` finished trials that logged the objective; else a note says why not."""
    metric, mode = objective
    found = importance(rows, metric, mode, min_trials)
    finished = sum(len(r.values.get(metric, [])) for r in rows)
    if not found:
        extras.importance_note = (
            f"importance not estimated: {finished} finished trials with {metric} "
            f"(at least {min_trials} needed) or no setting that varies"
        )
        return
    extras.importance = found
    extras.importance_note = f"importance of each setting for {metric} ({mode}), {finished} trials"
    path = out / "importance.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["setting", "importance", "evaluator"])
        writer.writerows((i.setting, i.importance, i.evaluator) for i in found)
    figure = Figure("importance", f"importance for {metric} ({finished} finished trials)")
    figure.png, figure.csv = out / "importance.png", path
    _draw_importance(found, figure)
    extras.figures.append(figure)
    extras.files += [path, figure.png]


def _draw_importance(found: list[Importance], figure: Figure) -> None:
    plt = pyplot()
    settings = list(dict.fromkeys(i.setting for i in found))[::-1]
    evaluators = list(dict.fromkeys(i.evaluator for i in found))
    fig, axes = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(settings) * len(evaluators)))
    height = 0.8 / len(evaluators)
    for index, evaluator in enumerate(evaluators):
        score = {i.setting: i.importance for i in found if i.evaluator == evaluator}
        axes.barh(
            [y + index * height for y in range(len(settings))],
            [score.get(s, 0.0) for s in settings],
            height=height,
            label=evaluator,
        )
    axes.set_yticks([y + height * (len(evaluators) - 1) / 2 for y in range(len(settings))])
    axes.set_yticklabels(settings)
    axes.set_xlabel("importance (each evaluator's sum to 1)")
    axes.legend(fontsize=7)
    save_figure(fig, axes, figure, figure.png)


def write_curves(
    rows: list[ConfigurationRow],
    histories: Mapping,
    out: Path,
    extras: Extras,
    objective: tuple[str, str] = OBJECTIVE,
) -> None:
    """learning_curves.csv (configuration, epoch, mean, ci_low, ci_high, seeds; validation
    accuracy in %) and learning_curves.png (a mean line and its 95% band per configuration), of
    at most CURVE_LIMIT configurations: beyond it the best by `objective`, as the title says.
    Only the drawn configurations' histories are looked up in `histories`."""
    found = curves(rows, histories, objective)
    if not found:
        return
    extras.curves_note = curve_note(rows, objective)
    labels = label_keys(rows)
    path = out / "learning_curves.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["configuration", "epoch", "mean", "ci_low", "ci_high", "seeds"])
        for curve in found:
            for epoch, point in zip(curve.epochs, curve.points, strict=True):
                p = point.scaled(100)
                writer.writerow([row_label(curve.row, labels), epoch, p.mean, p.low, p.high, p.n])
    title = "validation accuracy per epoch (mean, 95% band over seeds)"
    if extras.curves_note:
        title += f":\n{extras.curves_note}"
    figure = Figure("learning_curves", title)
    figure.png, figure.csv = out / "learning_curves.png", path
    _draw_curves(found, labels, figure)
    extras.curves = found
    extras.figures.append(figure)
    extras.files += [path, figure.png]


def _draw_curves(found: list[Curve], labels: list[str], figure: Figure) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(figsize=(6.4, 4.2))
    for index, curve in enumerate(found):
        color = f"C{index % 10}"
        points = [p.scaled(100) for p in curve.points]
        axes.plot(
            curve.epochs,
            [p.mean for p in points],
            color=color,
            marker="o",  # a one-epoch curve is a point
            markersize=3,
            label=row_label(curve.row, labels),
        )
        band = [(e, p) for e, p in zip(curve.epochs, points, strict=True) if p.defined]
        if band:
            axes.fill_between(
                [e for e, _ in band],
                [p.low for _, p in band],
                [p.high for _, p in band],
                color=color,
                alpha=0.15,
            )
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation accuracy (%)")
    axes.legend(fontsize=6, ncol=2)
    save_figure(fig, axes, figure, figure.png)


def write_search_front(
    rows: list[ConfigurationRow], out: Path, extras: Extras, objectives: list[tuple[str, str]]
) -> None:
    """A multi-objective search's result: the configurations on the front of its objectives
    (means over seeds), pareto_search.csv and, for two objectives, pareto_search.png."""
    extras.search_objectives = objectives
    extras.search_front = search_front(rows, objectives)
    labels, metrics = label_keys(rows), [m for m, _ in objectives]
    path = out / "pareto_search.csv"
    members = {id(r) for r in extras.search_front}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["configuration", "seeds", *metrics, "front_search"])
        for row in rows:
            means = [row.mean(m) for m in metrics]
            writer.writerow([row_label(row, labels), row.finished, *means, id(row) in members])
    extras.files.append(path)
    if len(objectives) != 2:
        return
    (y_metric, y_mode), (x_metric, x_mode) = objectives
    scored = [r for r in rows if r.mean(x_metric) is not None and r.mean(y_metric) is not None]
    figure = Figure(
        "pareto_search", f"the search's front: {y_metric} ({y_mode}) against {x_metric} ({x_mode})"
    )
    figure.png, figure.csv = out / "pareto_search.png", path
    draw_scatter_front(
        [(r.mean(x_metric), r.mean(y_metric), row_label(r, labels)) for r in scored],
        [id(r) in members for r in scored],
        (x_metric, y_metric),
        figure,
    )
    extras.figures.insert(0, figure)
    extras.files.append(figure.png)


def write_extras(
    rows: list[ConfigurationRow],
    out: Path,
    objectives: list[tuple[str, str]],
    histories: Mapping | None = None,
    min_trials: int = MIN_TRIALS,
) -> Extras:
    """Every analysis that fits the rows, written into `out`; `objectives`: the study's
    (metric, mode) pairs (importance and curves follow the first; a multi-objective search's
    front is written first); `histories` {run id: [(epoch, value)]}, looked up only for the
    runs whose curves are drawn (a store's may be read on demand)."""
    extras, objective = Extras(), objectives[0]
    if len(objectives) > 1:
        write_search_front(rows, out, extras, objectives)
    write_pareto(rows, out, extras)
    write_importance(rows, out, extras, objective, min_trials)
    if histories is not None:  # not its truth value: that could read every run's history
        write_curves(rows, histories, out, extras, objective)
    return extras
