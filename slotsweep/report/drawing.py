"""Drawing a study's figures: PNGs with matplotlib (no display needed) and a CSV of the values
each plots."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from slotsweep.analysis import ConfigurationRow
from slotsweep.report.figures import Figure, by_series, figure_builders
from slotsweep.report.paper import label_keys, row_label

CSV_HEADER = (
    "figure",
    "series",
    "x",
    "y",
    "y_std",
    "seeds",
    "paper_y",
    "paper_precision",
    "configuration",
)


def pyplot():  # noqa: ANN202 - matplotlib's module
    import matplotlib

    matplotlib.use("Agg")  # files only: reports run on machines without a display
    import matplotlib.pyplot as plt

    return plt


def _draw_k(figure: Figure, path: Path, ylabel: str = "test accuracy (%)") -> None:
    """Accuracy against K per series; weight-trained networks as a band (mean +- std)."""
    plt = pyplot()
    fig, axes = plt.subplots(figsize=(6.4, 4.2))
    grouped = by_series(figure.points)
    for index, (series, members) in enumerate(grouped.items()):
        color = f"C{index}"
        if members[0].x == "baseline":
            p = members[0]
            axes.axhspan(p.y - p.y_std, p.y + p.y_std, color=color, alpha=0.2)
            axes.axhline(p.y, color=color, linestyle="--", label=f"{series} (ours)")
            if p.paper_y is not None:
                axes.axhline(p.paper_y, color=color, linestyle=":", label=f"{series} (paper)")
            continue
        xs = [p.x for p in members]
        axes.errorbar(
            xs,
            [p.y for p in members],
            yerr=[p.y_std for p in members],
            marker="o",
            capsize=3,
            color=color,
            label=f"{series} (ours)",
        )
        paper = [(p.x, p.paper_y) for p in members if p.paper_y is not None]
        if paper:
            axes.plot(
                *zip(*paper, strict=True),
                marker="x",
                linestyle=":",
                color=color,
                label=f"{series} (paper)",
            )
    axes.set_xscale("log", base=2)
    axes.set_xlabel("K (values per connection)")
    axes.set_ylabel(ylabel)
    axes.legend(fontsize=7)
    save_figure(fig, axes, figure, path)


def save_figure(fig, axes, figure: Figure, path: Path) -> None:  # noqa: ANN001 - matplotlib objects
    """Titles, grids, saves and closes a figure: every figure of a report (extras' too) alike."""
    axes.set_title(figure.title, fontsize=9)
    axes.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)


def _draw_bars(figure: Figure, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(figsize=(6.4, 4.2))
    ks = sorted({p.x for p in figure.points})
    series = sorted({p.series for p in figure.points})
    width = 0.8 / len(series)
    for index, name in enumerate(series):
        members = {p.x: p for p in figure.points if p.series == name}
        xs = [ks.index(k) + (index - (len(series) - 1) / 2) * width for k in ks if k in members]
        bars = [members[k] for k in ks if k in members]
        axes.bar(
            xs,
            [p.y for p in bars],
            width,
            yerr=[p.y_std for p in bars],
            capsize=2,
            color=f"C{index}",
            label=f"{name} (ours)",
        )
        paper = [(x, p.paper_y) for x, p in zip(xs, bars, strict=True) if p.paper_y is not None]
        if paper:
            axes.scatter(
                *zip(*paper, strict=True),
                marker="x",
                color="black",
                zorder=3,
                label=f"{name} (paper)" if index == 0 else None,
            )
    axes.set_xticks(range(len(ks)), [str(k) for k in ks])
    lows = [p.y for p in figure.points] + [p.paper_y for p in figure.points if p.paper_y]
    axes.set_ylim(max(0.0, min(lows) - 5), min(100.0, max(lows) + 2))
    axes.set_xlabel("K (values per connection)")
    axes.set_ylabel("test accuracy (%)")
    axes.legend(fontsize=7)
    save_figure(fig, axes, figure, path)


def _draw_lines(figure: Figure, path: Path, xlabel: str, log_x: bool = False) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(figsize=(6.4, 4.2))
    grouped = by_series(figure.points)
    for index, (series, members) in enumerate(grouped.items()):
        axes.errorbar(
            [p.x for p in members],
            [p.y for p in members],
            yerr=[p.y_std for p in members],
            marker="o",
            capsize=3,
            color=f"C{index}",
            label=series,
        )
    if log_x:
        axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("test accuracy (%)")
    axes.legend(fontsize=7)
    save_figure(fig, axes, figure, path)


def _draw_heatmap(figure: Figure, path: Path) -> None:
    plt = pyplot()
    lambdas = sorted({p.series for p in figure.points}, key=lambda s: float(s.split()[1]))
    lrs = sorted({p.x for p in figure.points})
    grid = [[float("nan")] * len(lrs) for _ in lambdas]
    for p in figure.points:
        grid[lambdas.index(p.series)][lrs.index(p.x)] = p.y
    fig, axes = plt.subplots(figsize=(6.4, 4.6))
    image = axes.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    ys = [p.y for p in figure.points]
    middle = (min(ys) + max(ys)) / 2
    for i, line in enumerate(grid):
        for j, value in enumerate(line):
            if value == value:  # not NaN: a cell that ran
                axes.text(
                    j,
                    i,
                    f"{value:.1f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if value > middle else "white",
                )  # legible on yellow
    axes.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    axes.set_yticks(range(len(lambdas)), [s.split()[1] for s in lambdas])
    axes.set_xlabel("score learning rate")
    axes.set_ylabel("score_lambda (scores start U(0, lambda sigma))")
    fig.colorbar(image, ax=axes, label="test accuracy (%)")
    axes.set_title(figure.title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _draw_storage(figure: Figure, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(figsize=(6.4, 4.2))
    for index, method in enumerate(sorted({p.series for p in figure.points})):
        members = [p for p in figure.points if p.series == method]
        axes.errorbar(
            [p.x for p in members],
            [p.y for p in members],
            yerr=[p.y_std for p in members],
            marker="o",
            linestyle="none",
            capsize=3,
            color=f"C{index}",
            label=method,
        )
        for p in members:
            axes.annotate(
                p.configuration.removeprefix(method).strip(),
                (p.x, p.y),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
    axes.set_xscale("log")
    axes.set_xlabel("inference storage (KB, log scale)")
    axes.set_ylabel("test accuracy (%)")
    axes.legend(fontsize=7)
    save_figure(fig, axes, figure, path)


DRAWERS: dict[str, Callable[[Figure, Path], None]] = {
    "accuracy_vs_k": _draw_k,
    "sharing_vs_k": _draw_k,
    "gs_vs_ps": _draw_bars,
    "accuracy_vs_cost": lambda f, p: _draw_lines(f, p, "training cost (TFLOP)", log_x=True),
    "finetune_split": lambda f, p: _draw_lines(f, p, "share of the epochs as a slot machine"),
    "lambda_lr_heatmap": _draw_heatmap,
    "accuracy_vs_storage": _draw_storage,
}


def write_figure_csv(figure: Figure, path: Path) -> None:
    """The values a figure plots, one line per point."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        for p in figure.points:
            writer.writerow(
                [
                    figure.name,
                    p.series,
                    p.x,
                    p.y,
                    p.y_std,
                    p.seeds,
                    p.paper_y,  # None: an empty cell, as the csv module writes it
                    p.paper_precision,
                    p.configuration,
                ]
            )


def draw_figures(rows: list[ConfigurationRow], out: Path, title: str = "") -> list[Figure]:
    """Draws every figure that fits the rows into `out` (PNG and CSV each); returns them."""
    drawn, keys = [], label_keys(rows)
    for builder in figure_builders(rows):
        figure = builder(rows, "")
        if figure is None or not figure.points:
            continue
        for p in figure.points:
            p.configuration = row_label(p.row, keys) if p.row else p.configuration
        if title:
            figure.title = f"{title}: {figure.title}"
        figure.png, figure.csv = out / f"{figure.name}.png", out / f"{figure.name}.csv"
        DRAWERS[figure.name](figure, figure.png)
        write_figure_csv(figure, figure.csv)
        drawn.append(figure)
    return drawn
