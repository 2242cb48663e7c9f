"""Comparison of a study's trials: mean, std and 95% interval over seeds per configuration, the
closing table (fits a 100-column terminal) and comparison.csv (every detail)."""

from __future__ import annotations

import csv
from pathlib import Path

from rich import box
from rich.table import Table

from slotsweep.analysis import (
    METHOD,
    OBJECTIVE,
    ConfigurationRow,
    best_note,
    best_rows,
    reported_metrics,
    row_interval,
    row_stats,
    search_front,
    varying_settings,
)

__all__ = [
    "SHOWN",
    "TERMINAL_ROWS",
    "closing_table",
    "comparison_table",
    "front_table",
    "write_csv",
]

SHOWN = {
    "test_accuracy": ("test acc %", 100, ".2f"),
    "training_cost_flops": ("cost TFLOP", 1e-12, ".3f"),
    "memory_state_bytes": ("state MB", 1e-6, ".2f"),
    "peak_memory_bytes": ("peak MB", 1e-6, ".0f"),
    "training_memory_bytes": ("train MB", 1e-6, ".0f"),
    "model_size_bytes": ("model KB", 1e-3, ".1f"),
    "train_time_s": ("time s", 1, ".1f"),
    "finetune_test_accuracy": ("finetuned acc %", 100, ".2f"),
}
OPTIONAL_SHOWN = ("finetune_test_accuracy",)  # a column only where some row has it
# The terminal's closing table: accuracy with its interval, then the costs a reader weighs it
# against; state and peak memory stay in comparison.csv and the HTML page.
CLOSING = ("test_accuracy", "finetune_test_accuracy", "training_cost_flops", "model_size_bytes")
CLOSING += ("train_time_s",)


def mean_std_cell(row: ConfigurationRow, metric: str) -> str:
    """mean ± std in the column's unit; the std only where seeds disagree."""
    _, scale, fmt = SHOWN[metric]
    mean, std = row.mean(metric), row.std(metric)
    if mean is None:
        return "-"
    shown_std = f"{std * scale:{fmt}}"
    spread = f" ± {shown_std}" if float(shown_std) else ""  # a std that rounds to 0 is noise
    return f"{mean * scale:{fmt}}{spread}"


def interval_cell(row: ConfigurationRow, metric: str = "test_accuracy") -> str:
    """`97.50 [96.91, 98.09]` (mean and 95% interval, the column's unit), `97.50 (one seed)`."""
    _, scale, fmt = SHOWN[metric]
    interval = row_interval(row, metric)
    return "-" if interval is None else interval.scaled(scale).text(fmt)


def objective_cell(row: ConfigurationRow, metric: str) -> str:
    """A search objective's mean with its 95% interval, in the metric's own unit."""
    interval = row_interval(row, metric)
    return "-" if interval is None else interval.text(".4g")


def seeds_cell(row: ConfigurationRow) -> str:
    others = [f"+{n} {what}" for n, what in ((row.failed, "failed"), (row.stopped, "stopped")) if n]
    return f"{row.finished}" + (f" ({', '.join(others)})" if others else "")


def shown_metrics(rows: list[ConfigurationRow], metrics: tuple[str, ...]) -> list[str]:
    """The metrics some row has (optional ones), or every non-optional one."""
    return [
        m
        for m in metrics
        if m not in OPTIONAL_SHOWN or any(row.mean(m) is not None for row in rows)
    ]


def table_marks(rows: list[ConfigurationRow]) -> list[str]:
    """What every row of the closing table shares, said once above it instead of per row."""
    counts = {seeds_cell(row) for row in rows}
    marks = [f"every configuration: {counts.pop()} seed(s)"] if len(counts) == 1 else []
    marks.append(f"test acc %: mean [95% {METHOD}]; other columns: means over seeds")
    return marks


def comparison_table(
    rows: list[ConfigurationRow], title: str = "", keys: list[str] | None = None
) -> Table:
    """The closing table: one row per configuration, test accuracy with its 95% interval over
    seeds, the costs as means; narrow enough for a 100-column terminal. `keys`: the settings
    shown (default: those varying between `rows`; a study's, when `rows` are some of its)."""
    keys = keys or varying_settings(rows)
    shown = shown_metrics(rows, CLOSING)
    same_seeds = len({seeds_cell(row) for row in rows}) == 1
    table = Table(
        title=title or None,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="; ".join(table_marks(rows)),
        caption_justify="left",
    )
    for key in keys:
        table.add_column(key)
    if not same_seeds:
        table.add_column("seeds", justify="right")
    for metric in shown:
        header = SHOWN[metric][0] + (" [95%]" if metric.endswith("accuracy") else "")
        table.add_column(header, justify="right")
    for row in rows:
        cells = [
            interval_cell(row, m) if m.endswith("accuracy") else _mean_cell(row, m) for m in shown
        ]
        table.add_row(
            *(row.settings.get(k, "-") for k in keys),
            *([] if same_seeds else [seeds_cell(row)]),
            *cells,
        )
    return table


TERMINAL_ROWS = 40  # configurations in the closing table (a search's 1,000 would bury it)


def closing_table(
    rows: list[ConfigurationRow], title: str = "", objective: tuple[str, str] = OBJECTIVE
) -> tuple[Table, str]:
    """The closing table of the terminal and comparison.txt, of at most TERMINAL_ROWS
    configurations (beyond: the best by `objective`, with the study's varied settings as
    columns), and the line that says which ("" when every one is shown)."""
    shown = best_rows(rows, objective, TERMINAL_ROWS)
    table = comparison_table(shown, title=title, keys=varying_settings(rows))
    if len(shown) == len(rows):
        return table, ""
    return table, (
        f"shown: {best_note(len(shown), len(rows), objective)}; every one in comparison.csv "
        "and report.html (`slotsweep report`) and the parent run's comparison_table.json"
    )


def _mean_cell(row: ConfigurationRow, metric: str) -> str:
    _, scale, fmt = SHOWN[metric]
    mean = row.mean(metric)
    return "-" if mean is None else f"{mean * scale:{fmt}}"


def front_table(
    rows: list[ConfigurationRow], objectives: list[tuple[str, str]], title: str = ""
) -> Table:
    """A multi-objective search's result: the configurations on its front, each objective's
    mean over seeds with its 95% interval."""
    keys = varying_settings(rows)
    table = Table(title=title or None, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for key in keys:
        table.add_column(key)
    for metric, mode in objectives:
        table.add_column(f"{metric} ({mode})", justify="right")
    for row in search_front(rows, objectives):
        table.add_row(
            *(row.settings.get(k, "-") for k in keys),
            *(objective_cell(row, metric) for metric, _ in objectives),
        )
    return table


def stats_columns(row: ConfigurationRow, metrics: tuple[str, ...]) -> dict[str, object]:
    """mean, std, ci_low, ci_high of each metric, and `ci_low`/`ci_high` of test accuracy."""
    columns: dict[str, object] = {}
    for metric in metrics:
        columns.update({f"{metric}_{stat}": v for stat, v in row_stats(row, metric).items()})
    accuracy = row_interval(row, "test_accuracy")
    columns["ci_low"] = columns.get("test_accuracy_ci_low")
    columns["ci_high"] = columns.get("test_accuracy_ci_high")
    columns["ci_method"] = (
        "" if accuracy is None else (f"{METHOD}, 95%" if accuracy.defined else "one seed")
    )
    return columns


def write_csv(
    rows: list[ConfigurationRow], path: Path, extra: dict[int, dict[str, object]] | None = None
) -> None:
    """Every setting, counts, and mean/std/95% interval of every reported metric (`ci_low`,
    `ci_high`: test accuracy's), one line per configuration; `extra` adds columns per row (by
    index in `rows`): the paper's value beside ours."""
    keys, metrics = sorted({key for row in rows for key in row.settings}), reported_metrics()
    extra = extra or {}
    added = list(dict.fromkeys(column for values in extra.values() for column in values))
    stats = [stats_columns(row, metrics) for row in rows]
    header = keys + ["finished", "failed", "stopped"] + (list(stats[0]) if stats else [])
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header + added)
        for index, row in enumerate(rows):
            more = [extra.get(index, {}).get(column, "") for column in added]
            writer.writerow(
                [row.settings.get(k, "") for k in keys]
                + [row.finished, row.failed, row.stopped]
                + [*stats[index].values(), *more]  # None: an empty cell, as csv writes it
            )
