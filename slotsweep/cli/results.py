"""`slotsweep report`: the comparison with intervals over seeds, the findings, ours beside the
paper, the fronts, importance, curves, figures and the HTML page, logged to the study's latest
parent run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slotsweep.cli.common import (
    PresetOption,
    SetOption,
    UriOption,
    app,
    console,
    err,
    exit_on_problems,
    load_or_exit,
)
from slotsweep.study.schema import Study


@app.command()
def report(
    study_file: Annotated[Optional[Path], typer.Argument()] = None,
    experiment: Annotated[Optional[str], typer.Option(help="Instead of a study file")] = None,
    tracking_uri: UriOption = None,
    out: Annotated[Path, typer.Option(help="Folder for tables and plots")] = Path("report"),
    all_runs: Annotated[
        bool, typer.Option("--all", help="Every launch of the experiment, not only the latest")
    ] = False,
    set_: SetOption = None,
    preset: PresetOption = None,
    tolerance: Annotated[
        float,
        typer.Option(
            min=0, help="Points by which ours may differ from the paper's and count as within"
        ),
    ] = 1.0,
) -> None:
    """Comparison tables (mean, std and 95% interval over seeds), findings decided on paired
    per-seed differences, ours beside the paper's numbers, the figures that fit the study,
    Pareto fronts, importance, learning curves and one HTML page, in --out and logged to the
    study's parent run."""
    from slotsweep.preflight.checks import output_problems, tracking_problems
    from slotsweep.study.store import absolute_tracking_uri
    from slotsweep.tracking.queries import records_read_once

    if study_file is None and experiment is None:
        err.print("give a STUDY_FILE or --experiment NAME")
        raise typer.Exit(2)
    study = load_or_exit(study_file, set_, preset) if study_file else None
    name = experiment or study.experiment_name
    uri = absolute_tracking_uri(study.tracking_uri(tracking_uri) if study else tracking_uri)
    exit_on_problems(
        output_problems(out, "--out", folder=True) + tracking_problems(uri, must_exist=True)
    )
    with records_read_once():  # the tables and the parent's summary: one reading of the runs
        _report(uri, name, study, out, all_runs, tolerance)


def _report(
    uri: str, name: str, study: Study | None, out: Path, all_runs: bool, tolerance: float
) -> None:
    """The report of experiment `name` (its latest launch's trials unless `all_runs`)."""
    from slotsweep.report import compare, write_report
    from slotsweep.tracking.histories import metric_histories
    from slotsweep.tracking.queries import (
        latest_study_run,
        log_artifacts,
        study_document,
        trial_records,
    )
    from slotsweep.tracking.summary import finished_run_ids, search_objectives, summarize_study

    parent = latest_study_run(uri, name)
    try:
        records = trial_records(uri, name, None if all_runs else parent)
    except LookupError as error:
        err.print(str(error))
        raise typer.Exit(2) from None
    rows = compare(records)
    # the settings that ran are the launch's (its preset, its --set), not this command's
    settings = (study_document(uri, parent) if parent else None) or (
        study.model_dump(mode="json") if study else None
    )
    objectives = search_objectives(None, settings) if settings else search_objectives(study)
    print_comparison(rows, f"{name}: {len(records)} trial runs", tolerance, objectives)
    written = write_report(
        rows,
        out,
        title=f"{study.name if study else name}: report",
        settings=settings,
        description=study.description if study else "",
        tolerance=tolerance,
        objectives=objectives,
        # read on demand: only the runs of the configurations whose learning curves are drawn
        histories=metric_histories(uri, finished_run_ids(records)),
    )
    if parent:  # the files logged to the latest parent run, whose summary is refreshed
        log_artifacts(uri, parent, out)
        summarize_study(uri, name, parent, study, files=[])
    console.print("wrote " + ", ".join(str(p) for p in written))


def print_comparison(
    rows: list,
    title: str,
    tolerance: float | None = None,
    objectives: list[tuple[str, str]] | None = None,
) -> None:
    """A multi-objective search's front first (its result), then the comparison table, the data
    set that ran, ours beside the paper where it has numbers, and its findings: what `launch`
    ends with and `report` prints. A search's table shows its best TERMINAL_ROWS
    configurations (by the first of `objectives`, default best_val_accuracy) and says so."""
    from slotsweep.analysis import OBJECTIVE
    from slotsweep.report import DEFAULT_TOLERANCE, dataset_summary, findings, paper_points
    from slotsweep.report import paper_table as paper
    from slotsweep.report.tables import closing_table, front_table

    if objectives and len(objectives) > 1:
        console.print(front_table(rows, objectives, title="the search's result: its Pareto front"))

    objective = (objectives or [OBJECTIVE])[0]
    table, note = closing_table(rows, title, objective)
    console.print(table)
    if note:
        console.print(note, markup=False)
    datasets, notes = dataset_summary(rows)
    console.print(f"data set: {datasets}" + "".join(f"\n  {note}" for note in notes), markup=False)
    points = paper_points(rows, DEFAULT_TOLERANCE if tolerance is None else tolerance)
    if points:
        console.print(paper(points, title="ours beside the paper"))
    for finding in findings(rows):
        console.print(f"  {finding.verdict}: {finding.claim}. {finding.evidence}", markup=False)
