"""Comparison of a study's trials: mean and std over seeds per configuration, and its tables."""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from slotsweep import registry
from slotsweep.config import inapplicable_to_method, runtime_keys
from slotsweep.train.result import TrialRecord


def reported_metrics() -> tuple[str, ...]:
    """The comparison's columns, then the final metrics only some trials log (finetuning's)."""
    return (*registry.metric_names(compared=True), *registry.metric_names("final", optional=True))


def not_configuration() -> frozenset[str]:
    """Params that do not name a configuration: the seed (rows are means over seeds), where or
    how fast a trial ran, and log2_k (derived from k)."""
    return frozenset({"seed", "log2_k", *runtime_keys()})


SHOWN = {
    "test_accuracy": ("test acc %", 100, ".2f"),
    "training_cost_flops": ("cost TFLOP", 1e-12, ".3f"),
    "memory_state_bytes": ("state MB", 1e-6, ".2f"),
    "peak_memory_bytes": ("peak MB", 1e-6, ".0f"),
    "model_size_bytes": ("model KB", 1e-3, ".1f"),
    "train_time_s": ("time s", 1, ".1f"),
    "finetune_test_accuracy": ("finetuned acc %", 100, ".2f"),
}
OPTIONAL_SHOWN = ("finetune_test_accuracy",)  # a column only where some row has it


@dataclass
class ConfigurationRow:
    """One configuration (every setting but the seed) and its trials' statistics."""

    settings: dict[str, str]
    finished: int = 0
    failed: int = 0
    values: dict[str, list[float]] = field(default_factory=dict)

    def mean(self, metric: str) -> float | None:
        values = self.values.get(metric, [])
        return statistics.fmean(values) if values else None

    def std(self, metric: str) -> float | None:
        values = self.values.get(metric, [])
        return statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)


def compare(records: list[TrialRecord]) -> list[ConfigurationRow]:
    """Groups trial runs by configuration, ordered by `order_rows` (not by finishing order)."""
    rows: dict[tuple, ConfigurationRow] = {}
    skipped, metrics = not_configuration(), reported_metrics()  # read once, not per record
    for record in records:
        settings = {k: v for k, v in sorted(record.params.items()) if k not in skipped}
        row = rows.setdefault(tuple(settings.items()), ConfigurationRow(settings))
        if record.status != "FINISHED":
            row.failed += 1
            continue
        row.finished += 1
        for metric in metrics:
            if metric in record.metrics:
                row.values.setdefault(metric, []).append(record.metrics[metric])
    return order_rows(list(rows.values()))


# Slot machines first, then the peer method, then the weight-trained baselines.
METHOD_ORDER = {"slot": 0, "edge_popup": 1, "dense": 2}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def order_rows(rows: list[ConfigurationRow]) -> list[ConfigurationRow]:
    """Rows by method (baselines last), then by the varied keys: categorical ones (selection,
    sharing, ...) group the rows, numeric ones (K, epochs, lr) ascend within a group."""
    varied = [key for key in varying_settings(rows) if key != "method"]
    numeric = [
        key
        for key in varied
        if all(_number(r.settings[key]) is not None for r in rows if key in r.settings)
    ]
    keys = [key for key in varied if key not in numeric] + numeric

    def sort_key(row: ConfigurationRow) -> tuple:
        values = []
        for key in keys:
            value = row.settings.get(key)
            # a key a row lacks (K of a dense row) sorts after every value of it
            values.append(
                (1, 0.0, "")
                if value is None
                else (0, _number(value) or 0.0, "")
                if key in numeric
                else (0, 0.0, value)
            )
        return (METHOD_ORDER.get(row.settings.get("method", ""), 3), *values)

    return sorted(rows, key=sort_key)


def varying_settings(rows: list[ConfigurationRow]) -> list[str]:
    """Settings that differ between configurations (method always shown first)."""
    keys = sorted({key for row in rows for key in row.settings})
    methods = {row.settings.get("method", "slot") for row in rows}
    ignored = {method: inapplicable_to_method(method) for method in methods}
    # a baseline's placeholders for slot-only keys (k = 0, `n/a`) do not make a key vary
    present = {
        key: {
            row.settings[key]
            for row in rows
            if key in row.settings and key not in ignored[row.settings.get("method", "slot")]
        }
        for key in keys
    }
    varying = [key for key in keys if len(present[key]) > 1]
    return ["method"] + [key for key in varying if key != "method"]


def _cell(row: ConfigurationRow, metric: str) -> str:
    """mean ± std in the column's unit; the std only where seeds disagree."""
    _, scale, fmt = SHOWN[metric]
    mean, std = row.mean(metric), row.std(metric)
    if mean is None:
        return "-"
    shown_std = f"{std * scale:{fmt}}"
    spread = f" ± {shown_std}" if float(shown_std) else ""  # a std that rounds to 0 is noise
    return f"{mean * scale:{fmt}}{spread}"


def comparison_table(rows: list[ConfigurationRow], title: str = "") -> Table:
    """The closing table: one row per configuration, mean ± std over seeds."""
    keys = varying_settings(rows)
    shown = [
        m for m in SHOWN if m not in OPTIONAL_SHOWN or any(row.mean(m) is not None for row in rows)
    ]
    table = Table(title=title or None, header_style="bold")
    for key in keys:
        table.add_column(key)
    table.add_column("seeds", justify="right")
    for metric in shown:
        table.add_column(SHOWN[metric][0], justify="right")
    for row in rows:
        seeds = f"{row.finished}" + (f" (+{row.failed} failed)" if row.failed else "")
        table.add_row(
            *(row.settings.get(k, "-") for k in keys), seeds, *(_cell(row, m) for m in shown)
        )
    return table


def write_csv(
    rows: list[ConfigurationRow], path: Path, extra: dict[int, dict[str, object]] | None = None
) -> None:
    """Every setting, counts, and mean/std of every reported metric, one line per configuration;
    `extra` adds columns per row (by index in `rows`): the paper's value beside ours."""
    keys, metrics = sorted({key for row in rows for key in row.settings}), reported_metrics()
    extra = extra or {}
    added = list(dict.fromkeys(column for values in extra.values() for column in values))
    header = keys + ["finished", "failed"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header + added)
        for index, row in enumerate(rows):
            stats = [value for m in metrics for value in (row.mean(m), row.std(m))]
            more = [extra.get(index, {}).get(column, "") for column in added]
            writer.writerow(
                [row.settings.get(k, "") for k in keys]
                + [row.finished, row.failed]
                + ["" if v is None else v for v in stats + more]
            )
