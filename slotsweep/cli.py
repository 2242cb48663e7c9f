"""The `slotsweep` command: launch, validate, train, report, ui."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console

from slotsweep.config import TrialConfig
from slotsweep.study import Study, StudyError
from slotsweep.study_file import load_study

if TYPE_CHECKING:
    from slotsweep.orchestrate import LaunchSummary
    from slotsweep.tracking import TrialRecord

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Hyperparameter studies and sweeps for slot machines.")
# Piped or logged output gets a wide console, so the comparison table keeps one line per row,
# unless COLUMNS says how wide (Rich reads it when no width is given).
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
err = Console(stderr=True)

SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a study key by dotted path, VALUE as YAML: --set trial.epochs=1")]
PresetOption = Annotated[Optional[str], typer.Option(
    "--preset", help="Apply the study file's named preset (e.g. quick) before --set")]
UriOption = Annotated[Optional[str], typer.Option(
    "--tracking-uri", help="MLflow store (default: the study's, else sqlite:///mlflow.db)")]


def _load(path: Path, overrides: list[str] | None, preset: str | None = None) -> Study:
    """The validated study, or every problem printed and exit code 2."""
    try:
        return load_study(path, overrides or (), preset)
    except StudyError as error:
        err.print(f"[bold red]invalid study[/] {error.source}:")
        for problem in error.problems:
            err.print(f"  - {problem}", markup=False)
        raise typer.Exit(2) from None


def launch_timing(summary: LaunchSummary, records: list[TrialRecord], slots: int) -> str:
    """Wall time against the own time of the trials this launch ran, spread over the slots."""
    ran = [r for r in records if r.run_id not in summary.earlier_run_ids]
    finished = [r for r in ran if r.status == "FINISHED"]
    own = sum(r.metrics.get("train_time_s", 0.0) for r in finished)
    ideal = own / max(1, min(slots, len(ran)))
    overhead = summary.wall_time_s - ideal
    data = [r.metrics["data_time_fraction"] for r in finished if "data_time_fraction" in r.metrics]
    waiting = (f"; waiting for batches took {100 * sum(data) / len(data):.1f}% of epoch time "
               f"(trial mean; at most {100 * max(data):.1f}%)" if data else "")
    return (f"{summary.trials} trials run, {summary.failed} failed; wall time "
            f"{summary.wall_time_s:.1f} s; trials' own time {own:.1f} s, {ideal:.1f} s over "
            f"{slots} slots; Ray, MLflow and start-up added {overhead:.1f} s "
            f"({100 * overhead / max(summary.wall_time_s, 1e-9):.0f}% of the wall time)"
            f"{waiting}\nMLflow: {summary.tracking_uri}, experiment {summary.experiment}, "
            f"parent run {summary.parent_run_id}")


@app.command()
def validate(study_file: Path, set_: SetOption = None, preset: PresetOption = None) -> None:
    """Check a study file (and every preset in it) and print its trial plan."""
    from slotsweep.plan import plan_summary, plan_table

    study = _load(study_file, set_, preset)
    console.print(plan_table(study))
    console.print(plan_summary(study), markup=False)
    console.print(f"[green]{study_file} is valid[/]: {study.trial_count()} trials")


@app.command()
def launch(
    study_file: Path,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted study")] = False,
    address: Annotated[Optional[str], typer.Option(help="Existing Ray cluster address")] = None,
    tracking_uri: UriOption = None,
    max_concurrent: Annotated[Optional[int], typer.Option(min=1)] = None,
    num_cpus: Annotated[Optional[int], typer.Option(
        min=1, help="CPUs of the local Ray (default: all)")] = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and print the plan only")] = False,
    set_: SetOption = None,
    preset: PresetOption = None,
) -> None:
    """Run a study: Ray Tune trials, MLflow runs, a live view and a closing comparison."""
    from slotsweep.plan import plan_summary, plan_table

    study = _load(study_file, set_, preset)
    console.print(plan_table(study))
    console.print(plan_summary(study, tracking_uri), markup=False)
    if dry_run:
        return
    from slotsweep.orchestrate import Launcher, LaunchOptions
    from slotsweep.report import compare, comparison_table
    from slotsweep.tracking import trial_records

    options = LaunchOptions(address=address, tracking_uri=tracking_uri,
                            max_concurrent=max_concurrent, resume=resume, num_cpus=num_cpus)
    summary = Launcher(study, options, console).run()
    records = trial_records(summary.tracking_uri, summary.experiment, summary.parent_run_id)
    rows = compare(records)
    console.print(comparison_table(rows, title=f"study {study.name}"))
    _print_paper_comparison(rows)
    console.print(launch_timing(summary, records, options.max_concurrent or study.max_concurrent))
    if summary.trials and summary.failed == summary.trials:
        err.print("[bold red]every trial failed[/]")
        raise typer.Exit(1)


def _flag(name: str) -> typer.models.OptionInfo:
    """A `train` option documented by the trial setting's own description."""
    return typer.Option(help=TrialConfig.model_fields[name].description)


@app.command()
def train(
    arch: Annotated[Optional[str], _flag("arch")] = None,
    dataset: Annotated[Optional[str], _flag("dataset")] = None,
    data_root: Annotated[Optional[str], _flag("data_root")] = None,
    method: Annotated[Optional[str], _flag("method")] = None,
    k: Annotated[Optional[int], _flag("k")] = None,
    selection: Annotated[Optional[str], _flag("selection")] = None,
    sharing: Annotated[Optional[str], _flag("sharing")] = None,
    score_lambda: Annotated[Optional[float], _flag("score_lambda")] = None,
    recipe: Annotated[Optional[str], _flag("recipe")] = None,
    lr: Annotated[Optional[float], _flag("lr")] = None,
    momentum: Annotated[Optional[float], _flag("momentum")] = None,
    weight_decay: Annotated[Optional[float], _flag("weight_decay")] = None,
    schedule: Annotated[Optional[str], _flag("schedule")] = None,
    epochs: Annotated[Optional[int], _flag("epochs")] = None,
    batch_size: Annotated[Optional[int], _flag("batch_size")] = None,
    seed: Annotated[Optional[int], _flag("seed")] = None,
    device: Annotated[Optional[str], _flag("device")] = None,
    train_subset: Annotated[Optional[int], _flag("train_subset")] = None,
    padding: Annotated[Optional[str], _flag("padding")] = None,
    dropout: Annotated[Optional[float], _flag("dropout")] = None,
    keep_fraction: Annotated[Optional[float], _flag("keep_fraction")] = None,
    finetune_epochs: Annotated[Optional[int], _flag("finetune_epochs")] = None,
    impl: Annotated[Optional[str], _flag("impl")] = None,
    num_threads: Annotated[Optional[int], _flag("num_threads")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the result")] = None,
    tracking_uri: UriOption = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment")] = "slotsweep-train",
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Log nothing")] = False,
) -> None:
    """Train one trial in this process (no Ray): the code path every study trial runs."""
    given = {key: value for key, value in locals().items()
             if key in TrialConfig.model_fields and value is not None}
    try:
        config = TrialConfig.model_validate(given)
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(p) for p in problem["loc"]) or "(settings)"
            err.print(f"  - --{where.replace('_', '-')}: {problem['msg']}", markup=False)
        raise typer.Exit(2) from None
    from slotsweep.data import DataNotFoundError
    from slotsweep.trainer import TrialFailed
    from slotsweep.trial_run import TrackingTarget, run_trial

    target = None
    if not no_mlflow:
        from mlflow.tracking import MlflowClient

        from slotsweep.tracking import absolute_tracking_uri, experiment_id, git_commit

        uri = absolute_tracking_uri(tracking_uri)
        target = TrackingTarget(uri, experiment_id(MlflowClient(uri), experiment),
                                commit=git_commit())
    show = lambda m: console.print(  # noqa: E731
        f"{m.phase} epoch {m.epoch}: loss {m.train_loss:.4f} train {m.train_accuracy:.4f} "
        f"val {m.val_accuracy:.4f} ({m.epoch_time_s:.1f}s)")
    try:
        outcome = run_trial(config, target, on_epoch=show,
                            on_final=lambda m, _: show(m) if m is not None else None)
    except (DataNotFoundError, TrialFailed) as error:
        err.print(f"[bold red]trial failed:[/] {error}", markup=True)
        raise typer.Exit(1) from None
    result = outcome.result
    console.print(json.dumps(result.final_metrics(), indent=1))
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_dict(), indent=1))
    if outcome.run_id:
        console.print(f"MLflow run {outcome.run_id} in {target.uri}")


@app.command()
def report(
    study_file: Annotated[Optional[Path], typer.Argument()] = None,
    experiment: Annotated[Optional[str], typer.Option(help="Instead of a study file")] = None,
    tracking_uri: UriOption = None,
    out: Annotated[Path, typer.Option(help="Folder for tables and plots")] = Path("report"),
    all_runs: Annotated[bool, typer.Option(
        "--all", help="Every launch of the experiment, not only the latest")] = False,
    set_: SetOption = None,
    preset: PresetOption = None,
    tolerance: Annotated[float, typer.Option(
        min=0, help="Points by which ours may differ from the paper's and count as within")] = 1.0,
) -> None:
    """Comparison tables (mean and std over seeds), the figures that fit the study, ours beside
    the paper's numbers and one HTML page, in --out and logged to the study's parent run."""
    from slotsweep.report import compare, comparison_table, write_report
    from slotsweep.tracking import (
        absolute_tracking_uri,
        latest_study_run,
        log_artifacts,
        study_document,
        trial_records,
    )

    if study_file is None and experiment is None:
        err.print("give a STUDY_FILE or --experiment NAME")
        raise typer.Exit(2)
    study = _load(study_file, set_, preset) if study_file else None
    name = experiment or study.experiment_name
    uri = absolute_tracking_uri(study.tracking_uri(tracking_uri) if study else tracking_uri)
    parent = latest_study_run(uri, name)
    try:
        records = trial_records(uri, name, None if all_runs else parent)
    except LookupError as error:
        err.print(str(error))
        raise typer.Exit(1) from None
    rows = compare(records)
    console.print(comparison_table(rows, title=f"{name}: {len(records)} trial runs"))
    _print_paper_comparison(rows, tolerance)
    # the settings that ran are the launch's (its preset, its --set), not this command's
    settings = (study_document(uri, parent) if parent else None) or (
        study.model_dump(mode="json") if study else None)
    written = write_report(rows, out, title=f"{study.name if study else name}: report",
                           settings=settings,
                           description=study.description if study else "", tolerance=tolerance)
    if parent:
        log_artifacts(uri, parent, out)
    console.print("wrote " + ", ".join(str(p) for p in written))


def _print_paper_comparison(rows: list, tolerance: float | None = None) -> None:
    """The data set that ran, ours beside the paper where it has numbers, and its findings."""
    from slotsweep.report import DEFAULT_TOLERANCE, dataset_summary, findings, paper_points
    from slotsweep.report import paper_table as table

    datasets, notes = dataset_summary(rows)
    console.print(f"data set: {datasets}" + "".join(f"\n  {note}" for note in notes),
                  markup=False)
    points = paper_points(rows, DEFAULT_TOLERANCE if tolerance is None else tolerance)
    if points:
        console.print(table(points, title="ours beside the paper"))
    for finding in findings(rows):
        held = {True: "held", False: "did not hold", None: "observed"}[finding.held]
        console.print(f"  {held}: {finding.claim}. {finding.evidence}", markup=False)


@app.command()
def ui(
    study_file: Annotated[Optional[Path], typer.Argument()] = None,
    tracking_uri: UriOption = None,
    port: int = 5000,
    host: str = "127.0.0.1",
) -> None:
    """MLflow's UI on the study's tracking store."""
    from slotsweep.tracking import absolute_tracking_uri

    study = _load(study_file, None) if study_file else None
    uri = absolute_tracking_uri(study.tracking_uri(tracking_uri) if study else tracking_uri)
    console.print(f"MLflow UI on http://{host}:{port} for {uri}")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", host, "--port", str(port)]
    os.execvp(command[0], command)


def main() -> None:
    """Console entry point."""
    app()
