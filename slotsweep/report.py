"""Comparison of a study's trials: mean and std over seeds per configuration, tables and plots."""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from slotsweep import registry
from slotsweep.result import TrialRecord

REPORTED = registry.metric_names(compared=True)
NOT_CONFIGURATION = ("seed", *registry.runtime_keys(), "log2_k")  # log2_k: derived from k
SHOWN = {"test_accuracy": ("test acc %", 100, ".2f"),
         "training_cost_flops": ("cost TFLOP", 1e-12, ".3f"),
         "memory_state_bytes": ("state MB", 1e-6, ".2f"),
         "peak_memory_bytes": ("peak MB", 1e-6, ".0f"),
         "model_size_bytes": ("model KB", 1e-3, ".1f"),
         "train_time_s": ("time s", 1, ".1f")}


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
    """Groups trial runs by configuration, in order of first appearance."""
    rows: dict[tuple, ConfigurationRow] = {}
    for record in records:
        settings = {k: v for k, v in sorted(record.params.items()) if k not in NOT_CONFIGURATION}
        row = rows.setdefault(tuple(settings.items()), ConfigurationRow(settings))
        if record.status != "FINISHED":
            row.failed += 1
            continue
        row.finished += 1
        for metric in REPORTED:
            if metric in record.metrics:
                row.values.setdefault(metric, []).append(record.metrics[metric])
    return list(rows.values())


def varying_settings(rows: list[ConfigurationRow]) -> list[str]:
    """Settings that differ between configurations (method always shown first)."""
    keys = sorted({key for row in rows for key in row.settings})
    present = {key: {row.settings[key] for row in rows if key in row.settings} for key in keys}
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
    table = Table(title=title or None, header_style="bold")
    for key in keys:
        table.add_column(key)
    table.add_column("seeds", justify="right")
    for metric in SHOWN:
        table.add_column(SHOWN[metric][0], justify="right")
    for row in rows:
        seeds = f"{row.finished}" + (f" (+{row.failed} failed)" if row.failed else "")
        table.add_row(*(row.settings.get(k, "-") for k in keys), seeds,
                      *(_cell(row, m) for m in SHOWN))
    return table


def write_csv(rows: list[ConfigurationRow], path: Path) -> None:
    """Every setting, counts, and mean/std of every reported metric, one line per configuration."""
    keys = sorted({key for row in rows for key in row.settings})
    header = keys + ["finished", "failed"] + [f"{m}_{s}" for m in REPORTED for s in ("mean", "std")]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            stats = [value for m in REPORTED for value in (row.mean(m), row.std(m))]
            writer.writerow([row.settings.get(k, "") for k in keys] + [row.finished, row.failed]
                            + ["" if v is None else v for v in stats])


def plot_accuracy_vs_k(rows: list[ConfigurationRow], path: Path) -> bool:
    """Test accuracy against K per slot series, baselines as horizontal lines; False if no K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slots = [r for r in rows if r.settings.get("method") == "slot" and r.mean("test_accuracy")]
    if not slots:
        return False
    figure, axes = plt.subplots(figsize=(6, 4))
    series: dict[str, list[ConfigurationRow]] = {}
    for row in slots:
        name = " ".join(row.settings.get(k, "") for k in ("arch", "selection", "sharing"))
        series.setdefault(name, []).append(row)
    for name, members in series.items():
        members.sort(key=lambda r: int(r.settings["k"]))
        ks = [int(r.settings["k"]) for r in members]
        axes.errorbar(ks, [100 * r.mean("test_accuracy") for r in members],
                      yerr=[100 * r.std("test_accuracy") for r in members], marker="o",
                      capsize=3, label=name)
    for row in rows:
        if row.settings.get("method") != "slot" and row.mean("test_accuracy") is not None:
            axes.axhline(100 * row.mean("test_accuracy"), linestyle="--", color="gray",
                         label=f"{row.settings['method']} {row.settings.get('arch', '')}")
    axes.set_xscale("log", base=2)
    axes.set_xlabel("K (values per connection)")
    axes.set_ylabel("test accuracy (%)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def write_report(rows: list[ConfigurationRow], out: Path) -> list[Path]:
    """Writes comparison.csv, comparison.txt and accuracy_vs_k.png into `out`."""
    from rich.console import Console

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "comparison.csv", out / "comparison.txt"]
    write_csv(rows, written[0])
    with written[1].open("w") as handle:
        Console(file=handle, width=200).print(comparison_table(rows))
    if plot_accuracy_vs_k(rows, out / "accuracy_vs_k.png"):
        written.append(out / "accuracy_vs_k.png")
    return written
