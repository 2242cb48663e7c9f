"""Our results beside the paper's: the matching number, the difference, a verdict, and what of
the paper's settings a run changed (scale, data set) so that a reader can weigh the verdict."""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.table import Table

from slotsweep import registry
from slotsweep.analysis import (
    WITHIN,
    ConfigurationRow,
    Interval,
    against_reference,
    row_interval,
    varying_settings,
)
from slotsweep.config import default_lr, inapplicable_to_method
from slotsweep.report.paper_numbers import EDGE_POPUP_EPOCHS, SETTINGS, PaperNumber, paper_number

DEFAULT_TOLERANCE = 1.0  # points: what read-offs and the run's scale aside may separate two runs
STAND_INS = {"fashion_mnist": "mnist"}  # same shapes and files, a harder task


def percent(row: ConfigurationRow, metric: str = "test_accuracy") -> tuple[float, float] | None:
    """(mean, std) of an accuracy metric in percent; None when the row has none."""
    mean = row.mean(metric)
    return None if mean is None else (100 * mean, 100 * (row.std(metric) or 0.0))


def _is_auto(value: str | None) -> bool:
    return value in (None, "", "auto", "None")


def _paper_lambda(settings: dict[str, str]) -> bool:
    """Whether the score initialisation is the paper recipe's: left to its default, or logged
    as the resolved default (runs log resolved settings: FC 0.1, conv 1)."""
    recipe = registry.RECIPES.get("paper")
    fc, conv = settings.get("score_lambda"), settings.get("score_lambda_conv")
    return (_is_auto(fc) or float(fc) == recipe.score_lambda_fc) and (
        _is_auto(conv) or float(conv) == recipe.score_lambda_conv
    )


def paper_match(row: ConfigurationRow) -> PaperNumber | None:
    """The paper's number for a row run at the paper's method settings (its learning rate, score
    initialisation, no sharing, no finetuning); None for anything the paper did not measure."""
    s = row.settings
    method, arch = s.get("method"), s.get("arch", "")
    if arch not in SETTINGS or s.get("recipe", "paper") != "paper":
        return None
    if method == "dense":
        return paper_number(arch, "dense") if float(s.get("lr", 0)) == 0.01 else None
    if (
        method != "slot"
        or s.get("sharing", "none") != "none"
        or not _paper_lambda(s)
        or int(s.get("finetune_epochs", 0) or 0)
    ):
        return None
    k, selection = int(s.get("k", 0)), s.get("selection", "greedy")
    if float(s.get("lr", 0)) != default_lr("slot", selection, k):
        return None
    return paper_number(arch, "slot", selection, k)


def dataset_note(dataset: str, arch: str) -> str | None:
    """How a run's data set relates to the paper's for this architecture (None: the same)."""
    settings = SETTINGS.get(arch)
    if settings is None or dataset == settings.dataset:
        return None
    if STAND_INS.get(dataset) == settings.dataset:
        return f"{dataset} standing in for {settings.dataset}"
    return f"{dataset}, not the paper's {settings.dataset}"


def scale_notes(row: ConfigurationRow) -> list[str]:
    """The paper settings a row departs from: epochs, training examples, schedule, validation."""
    s = row.settings
    paper = SETTINGS.get(s.get("arch", ""))
    if paper is None:
        return []
    method = s.get("method")
    full = {
        "slot": paper.slot_epochs,
        "dense": paper.baseline_epochs,
        "edge_popup": EDGE_POPUP_EPOCHS,
    }.get(method, paper.slot_epochs)
    notes = []
    epochs = int(s.get("epochs", full)) + int(s.get("finetune_epochs", 0) or 0)
    if epochs < full:
        notes.append(f"{epochs} of {full} epochs")
    if not _is_auto(s.get("train_subset")):
        notes.append(f"{s['train_subset']} training examples")
    schedule = "cosine" if method == "edge_popup" else paper.schedule
    if s.get("schedule", schedule) != schedule:
        notes.append(f"{s['schedule']} schedule (paper: {schedule})")
    if not _is_auto(s.get("val_fraction")) and float(s["val_fraction"]) != paper.val_fraction:
        notes.append(f"validation {s['val_fraction']} (paper: {paper.val_fraction})")
    return notes


def row_marks(row: ConfigurationRow) -> list[str]:
    """What a reader must know before comparing this row with the paper."""
    marks = []
    scale = scale_notes(row)
    if scale:
        marks.append("reduced scale: " + ", ".join(scale))
    other = dataset_note(row.settings.get("dataset", ""), row.settings.get("arch", ""))
    if other:
        marks.append(other)
    return marks


@dataclass(frozen=True)
class PaperPoint:
    """One row of ours beside the paper's number, with the verdict: `within` when our 95%
    interval over seeds lies inside the paper's value +- `tolerance`, `above`/`below` when it
    lies wholly beyond it, else (or with one seed) `inconclusive`."""

    row: ConfigurationRow
    label: str
    interval: Interval  # ours: the mean over seeds and its 95% interval, in %
    paper: PaperNumber
    tolerance: float  # points: the paper's precision + the stated tolerance
    marks: tuple[str, ...]
    # against the weight-trained network of the same arch and data (ours and the paper's): a
    # comparison that survives a change of data set or scale
    ours_vs_baseline: float | None = None
    paper_vs_baseline: float | None = None

    @property
    def ours(self) -> float:
        return self.interval.mean

    @property
    def ours_std(self) -> float:
        return self.interval.std or 0.0  # one seed: 0, as its std

    @property
    def difference(self) -> float:
        return self.ours - self.paper.value

    @property
    def verdict(self) -> str:
        return against_reference(self.interval, self.paper.value, self.tolerance)

    @property
    def within(self) -> bool:
        return self.verdict == WITHIN

    @property
    def ours_text(self) -> str:
        """`97.50 [96.91, 98.09]` or `97.50 (one seed)`."""
        return self.interval.text()


def row_label(row: ConfigurationRow, keys: list[str] | None = None) -> str:
    """A row as a reader names it: `slot k=8 greedy`, `dense`, `edge_popup keep_fraction=0.5`."""
    s = row.settings
    keys = keys if keys is not None else [k for k in varying_settings([row]) if k != "method"]
    parts = [s.get("method", "?")]
    skipped = _inapplicable(parts[0])
    for key in keys:
        if key == "method" or key not in s or key in skipped:
            continue
        value = s[key]
        parts.append(value if key in ("selection", "sharing", "arch") else f"{key}={value}")
    return " ".join(parts)


@functools.cache
def _inapplicable(method: str) -> frozenset[str]:
    """`inapplicable_to_method`, read off the config's schema once per method (a report names
    each of a search's 1,000 configurations several times)."""
    return inapplicable_to_method(method)


def label_keys(rows: list[ConfigurationRow]) -> list[str]:
    """The settings that tell rows apart, in reading order (K first, then the rest)."""
    # lr names a row only where a study set it: the recipe's defaults follow K and selection
    chosen_lr = any(_lr_chosen(row) for row in rows)
    varied = [
        key for key in varying_settings(rows) if key != "method" and (key != "lr" or chosen_lr)
    ]
    return sorted(varied, key=lambda key: (key != "arch", key != "k", key))


def _lr_chosen(row: ConfigurationRow) -> bool:
    """Whether a row's learning rate differs from the paper recipe's default for it."""
    s = row.settings
    if "lr" not in s or "method" not in s:
        return False
    default = default_lr(s["method"], s.get("selection", "greedy"), int(s.get("k", 8)))
    return float(s["lr"]) != default


def paper_points(
    rows: list[ConfigurationRow], tolerance: float = DEFAULT_TOLERANCE
) -> list[PaperPoint]:
    """Every row the paper has a number for, in the rows' order (varied keys, baselines last)."""
    keys = label_keys(rows)
    points = []
    for row in rows:
        paper, interval = paper_match(row), row_interval(row)
        if paper is None or interval is None:
            continue
        ours = interval.scaled(100)  # in %, as the paper's
        relative = _against_baseline(row, rows, ours.mean, paper.value)
        points.append(
            PaperPoint(
                row,
                row_label(row, keys),
                ours,
                paper,
                paper.precision + tolerance,
                tuple(row_marks(row)),
                *relative,
            )
        )
    return points


def _against_baseline(
    row: ConfigurationRow, rows: list[ConfigurationRow], ours: float, paper: float
) -> tuple[float | None, float | None]:
    """(ours - our weight-trained network, paper - the paper's) for a slot row."""
    if row.settings.get("method") != "slot":
        return None, None
    same = ("arch", "dataset")
    for other in rows:
        if other.settings.get("method") == "dense" and all(
            other.settings.get(k) == row.settings.get(k) for k in same
        ):
            baseline, paper_baseline = percent(other), paper_match(other)
            if baseline is not None and paper_baseline is not None:
                return ours - baseline[0], paper - paper_baseline.value
    return None, None


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def shared_marks(points: list[PaperPoint]) -> list[str]:
    """The marks every point carries (said once above the table, not on every row)."""
    marks = [set(p.marks) for p in points]
    return sorted(set.intersection(*marks)) if marks else []


def paper_table(points: list[PaperPoint], title: str = "") -> Table:
    """Ours against the paper, point by point, narrow enough for a 100-column terminal: marks
    every point shares are in the caption, the paper's sources and notes in the CSV and HTML."""
    shared = shared_marks(points)
    table = Table(
        title=title or None,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="every point: " + "; ".join(shared) if shared else None,
        caption_justify="left",
    )
    for column in ("configuration", "ours % [95%]", "paper %", "diff", "verdict", "vs base"):
        table.add_column(
            column, justify="left" if column in ("configuration", "verdict") else "right"
        )
    own = any(set(p.marks) - set(shared) for p in points)
    if own:
        table.add_column("marks")
    for p in points:
        table.add_row(
            p.label,
            p.ours_text,
            f"{p.paper.value:.1f}±{p.paper.precision:g}",
            f"{p.difference:+.2f}",
            p.verdict,
            f"{signed(p.ours_vs_baseline)}/{signed(p.paper_vs_baseline)}"
            if p.ours_vs_baseline is not None
            else "-",
            *(["; ".join(m for m in p.marks if m not in shared)] if own else []),
        )
    return table


def point_columns(point: PaperPoint) -> dict[str, object]:
    """The paper's value beside ours, as extra columns of comparison.csv (fractions, like ours)."""
    return {
        "paper_test_accuracy": point.paper.value / 100,
        "paper_precision": point.paper.precision / 100,
        "paper_source": point.paper.source,
        "difference": point.difference / 100,
        "tolerance": point.tolerance / 100,
        "verdict": point.verdict,
        "marks": "; ".join(point.marks),
    }


PAPER_CSV_HEADER = (
    "configuration",
    "ours_percent",
    "ours_std",
    "ours_ci_low",
    "ours_ci_high",
    "seeds",
    "paper_percent",
    "paper_precision",
    "difference",
    "tolerance",
    "verdict",
    "ours_vs_baseline",
    "paper_vs_baseline",
    "paper_source",
    "paper_note",
    "marks",
)


def write_paper_csv(points: list[PaperPoint], path: Path) -> None:
    """paper_comparison.csv: the paper table in percent, one line per point."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PAPER_CSV_HEADER)
        for p in points:
            writer.writerow(
                [
                    p.label,
                    round(p.ours, 4),
                    round(p.ours_std, 4),
                    _blank(p.interval.low if p.interval.defined else None),
                    _blank(p.interval.high if p.interval.defined else None),
                    p.interval.n,
                    p.paper.value,
                    p.paper.precision,
                    round(p.difference, 4),
                    round(p.tolerance, 4),
                    p.verdict,
                    _blank(p.ours_vs_baseline),
                    _blank(p.paper_vs_baseline),
                    p.paper.source,
                    p.paper.note,
                    "; ".join(p.marks),
                ]
            )


def _blank(value: float | None) -> object:
    return "" if value is None else round(value, 4)
