"""Reports of a study: the comparison over seeds with 95% intervals (`tables`), the figure that
fits the study (`figures`), our numbers beside the paper's (`paper`), its findings decided on
paired per-seed differences (`findings`), Pareto fronts, importance and learning curves
(`extras`, from `slotsweep.analysis`), and one self-contained HTML page (`html`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from slotsweep.analysis import (
    MIN_TRIALS,
    OBJECTIVE,
    ConfigurationRow,
    compare,
    not_configuration,
    order_rows,
    reported_metrics,
    varying_settings,
)
from slotsweep.report.drawing import draw_figures
from slotsweep.report.extras import Extras, write_extras
from slotsweep.report.figures import Figure
from slotsweep.report.findings import Finding, findings, write_findings_csv
from slotsweep.report.paper import (
    DEFAULT_TOLERANCE,
    PaperPoint,
    dataset_note,
    paper_points,
    paper_table,
    point_columns,
    write_paper_csv,
)
from slotsweep.report.paper_numbers import SETTINGS
from slotsweep.report.tables import SHOWN, closing_table, comparison_table, write_csv

__all__ = [
    "not_configuration",
    "reported_metrics",
    "SHOWN",
    "ConfigurationRow",
    "DEFAULT_TOLERANCE",
    "Extras",
    "Figure",
    "Finding",
    "PaperPoint",
    "compare",
    "comparison_table",
    "dataset_label",
    "dataset_summary",
    "draw_figures",
    "findings",
    "order_rows",
    "paper_points",
    "paper_table",
    "varying_settings",
    "write_csv",
    "write_report",
]


def dataset_summary(rows: list[ConfigurationRow]) -> tuple[str, list[str]]:
    """(the data sets that ran, a note per data set that is not the paper's for its arch)."""
    pairs = sorted({(r.settings.get("dataset", "?"), r.settings.get("arch", "?")) for r in rows})
    datasets = ", ".join(dict.fromkeys(dataset for dataset, _ in pairs)) or "none"
    notes = []
    for dataset, arch in pairs:
        note = dataset_note(dataset, arch)
        if note:
            notes.append(
                f"{arch} ran on {note}: the paper's numbers are shown for reference; "
                "verdicts against them measure the change of data set too."
            )
        elif arch in SETTINGS:
            notes.append(f"{arch} ran on {dataset}, the paper's data set.")
    return datasets, list(dict.fromkeys(notes))


def dataset_label(rows: list[ConfigurationRow]) -> str:
    """`lenet_300_100 on fashion_mnist (paper: mnist)`: what ran, for figure titles."""
    pairs = sorted({(r.settings.get("arch", "?"), r.settings.get("dataset", "?")) for r in rows})
    labels = []
    for arch, dataset in pairs:
        paper = SETTINGS[arch].dataset if arch in SETTINGS else dataset
        labels.append(f"{arch} on {dataset}" + (f" (paper: {paper})" if paper != dataset else ""))
    return ", ".join(labels)


def _common_settings(rows: list[ConfigurationRow]) -> dict[str, str]:
    """The settings every configuration shares (the study's, when no study file is given)."""
    if not rows:
        return {}
    shared = dict(rows[0].settings)
    for row in rows[1:]:
        shared = {k: v for k, v in shared.items() if row.settings.get(k) == v}
    return shared


def _write_text(
    rows: list[ConfigurationRow], points: list[PaperPoint], path: Path, objective: tuple
) -> None:
    """comparison.txt: the closing table (and what it leaves out), ours beside the paper."""
    with path.open("w") as handle:
        console = Console(file=handle, width=100)
        table, note = closing_table(rows, objective=objective)
        console.print(table)
        if note:
            console.print(note, markup=False)
        if points:
            console.print(paper_table(points, title="ours beside the paper"))


def write_report(
    rows: list[ConfigurationRow],
    out: Path,
    *,
    title: str = "report",
    settings: dict[str, Any] | None = None,
    description: str = "",
    tolerance: float = DEFAULT_TOLERANCE,
    objectives: list[tuple[str, str]] | None = None,
    histories: Mapping[str, list[tuple[int, float]]] | None = None,
    min_trials: int = MIN_TRIALS,
) -> list[Path]:
    """Writes into `out`: comparison.csv (with 95% intervals and the paper's value beside
    ours), comparison.txt (the closing table: at most TERMINAL_ROWS configurations, a
    search's best), paper_comparison.csv, a PNG and a CSV per fitting figure, pareto.csv
    and its fronts, importance.csv (for the first of `objectives`, the study's (metric, mode)
    pairs, default best_val_accuracy max; at least `min_trials` finished trials), a
    multi-objective search's front (pareto_search.csv, first on the page), learning curves
    (from `histories`: {run id: [(epoch, val_accuracy)]}, looked up only for the at most
    CURVE_LIMIT configurations drawn) and report.html."""
    from slotsweep.report.html import write_html

    out.mkdir(parents=True, exist_ok=True)
    objectives = objectives or [OBJECTIVE]
    points = paper_points(rows, tolerance)
    by_row = {id(p.row): point_columns(p) for p in points}
    extra = {i: by_row[id(row)] for i, row in enumerate(rows) if id(row) in by_row}
    written = [out / "comparison.csv", out / "comparison.txt", out / "paper_comparison.csv"]
    write_csv(rows, written[0], extra)
    _write_text(rows, points, written[1], objectives[0])
    write_paper_csv(points, written[2])
    figures = draw_figures(rows, out, title=dataset_label(rows))
    for figure in figures:
        written += [figure.png, figure.csv]
    extras = write_extras(rows, out, objectives, histories, min_trials)
    written += extras.files
    found = findings(rows)
    write_findings_csv(found, out / "findings.csv")
    written.append(out / "findings.csv")
    datasets, notes = dataset_summary(rows)
    page = out / "report.html"
    write_html(
        page,
        title=title,
        rows=rows,
        figures=figures,
        points=points,
        findings=found,
        settings=settings or _common_settings(rows),
        dataset_notes=notes,
        datasets=datasets,
        description=description,
        tolerance=tolerance,
        extras=extras,
    )
    return written + [page]
