"""The `slotsweep` command: launch, validate, train, report, ui, evaluate."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console

from slotsweep.config import TrialConfig
from slotsweep.registry import DEFAULT_TRACKING_URI
from slotsweep.study import Study, StudyError
from slotsweep.study_file import load_study
from slotsweep.timing import launch_timing
from slotsweep.trial_flags import with_trial_key_flags

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Hyperparameter studies and sweeps for slot machines.")
# Piped or logged output gets a wide console, so the comparison table keeps one line per row,
# unless COLUMNS says how wide (Rich reads it when no width is given).
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() or "COLUMNS" in os.environ else 160)

SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a study key by dotted path, VALUE as YAML: --set trial.epochs=1")]
PresetOption = Annotated[Optional[str], typer.Option(
    "--preset", help="Apply the study file's named preset (e.g. quick) before --set")]
UriOption = Annotated[Optional[str], typer.Option(
    "--tracking-uri", help=f"MLflow store (default: the study's, else {DEFAULT_TRACKING_URI})")]


def _load(path: Path, overrides: list[str] | None, preset: str | None = None) -> Study:
    """The validated study, or every problem printed and exit code 2."""
    try:
        return load_study(path, overrides or (), preset)
    except StudyError as error:
        err.print(f"[bold red]invalid study[/] {error.source}:")
        for problem in error.problems:
            err.print(f"  - {problem}", markup=False)
        raise typer.Exit(2) from None


def _checked(path: Path, overrides: list[str] | None, tracking_uri: str | None,
             preset: str | None = None) -> Study:
    """The validated study that also passes the static pre-flight checks, else exit code 2."""
    from slotsweep.preflight import study_problems

    study = _load(path, overrides, preset)
    # several groups may share a fault
    problems = list(dict.fromkeys(study_problems(study, tracking_uri)))
    if problems:
        err.print(f"[bold red]invalid study[/] {path}:")
        for problem in problems:
            err.print(f"  - {problem}", markup=False)
        raise typer.Exit(2)
    return study


def _preflight(problems: list[str]) -> None:
    """Exit code 2 with one line per problem, when a pre-flight check failed."""
    if problems:
        err.print("[bold red]pre-flight failed[/] (nothing was started):")
        for problem in problems:
            err.print(f"  - {problem}", markup=False)
        raise typer.Exit(2)


AddressOption = Annotated[Optional[str], typer.Option(help="Existing Ray cluster address")]
NumCpusOption = Annotated[Optional[int], typer.Option(
    min=1, help="CPUs of the local Ray (default: all)")]


@app.command()
def validate(
    study_file: Path,
    set_: SetOption = None,
    preset: PresetOption = None,
    check_env: Annotated[bool, typer.Option(
        help="Also check the store, the cluster, the devices and the data, as launch does",
    )] = False,
    address: AddressOption = None,
    tracking_uri: UriOption = None,
    num_cpus: NumCpusOption = None,
) -> None:
    """Check a study file (and every preset in it) and print its trial plan."""
    from slotsweep.plan import plan_summary, plan_table
    from slotsweep.preflight import environment_problems

    study = _checked(study_file, set_, tracking_uri, preset)
    console.print(plan_table(study))
    console.print(plan_summary(study), markup=False)
    if check_env:
        _preflight(environment_problems(study, address=address, num_cpus=num_cpus,
                                        tracking_uri=tracking_uri))
    console.print(f"[green]{study_file} is valid[/]: {study.trial_count()} trials")


@app.command()
def launch(
    study_file: Path,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted study")] = False,
    address: AddressOption = None,
    tracking_uri: UriOption = None,
    max_concurrent: Annotated[Optional[int], typer.Option(min=1)] = None,
    num_cpus: NumCpusOption = None,
    num_gpus: Annotated[Optional[int], typer.Option(
        min=0, help="GPUs of the local Ray (default: those Ray finds)")] = None,
    storage: Annotated[Optional[str], typer.Option(
        help="Tune storage for checkpoints: a folder (shared on a cluster) or a URI such as "
             "s3://bucket/path (default: the study's storage, else ray_results)")] = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and print the plan only")] = False,
    set_: SetOption = None,
    preset: PresetOption = None,
) -> None:
    """Run a study: Ray Tune trials, MLflow runs, a live view and a closing comparison."""
    from slotsweep.plan import plan_summary, plan_table
    from slotsweep.preflight import environment_problems, launch_problems

    study = _checked(study_file, set_, tracking_uri, preset)
    console.print(plan_table(study))
    console.print(plan_summary(study, tracking_uri), markup=False)
    if dry_run:
        return
    _preflight(launch_problems(study, address=address, num_cpus=num_cpus)
               or environment_problems(study, address=address, num_cpus=num_cpus,
                                       tracking_uri=tracking_uri, num_gpus=num_gpus))
    from slotsweep.orchestrate import Launcher, LaunchOptions
    from slotsweep.progress import distinguishing_keys, failures_table, trial_name
    from slotsweep.report import compare, comparison_table
    from slotsweep.tracking import trial_records

    options = LaunchOptions(address=address, tracking_uri=tracking_uri,
                            max_concurrent=max_concurrent, resume=resume, num_cpus=num_cpus,
                            num_gpus=num_gpus, storage_path=storage)
    summary = Launcher(study, options, console).run()
    records = trial_records(summary.tracking_uri, summary.experiment, summary.parent_run_id)
    rows = compare(records)
    console.print(comparison_table(rows, title=f"study {study.name}"))
    _print_paper_comparison(rows)
    failures = [r for r in records if r.status == "FAILED"]
    keys = distinguishing_keys([r.params for r in records])
    failed = failures_table([(r.run_id[:8], trial_name(r.params, keys), r.error or "")
                             for r in failures])
    if failed is not None:
        console.print(failed)
    console.print(launch_timing(summary, records, options.max_concurrent or study.max_concurrent))
    if summary.trials and summary.failed == summary.trials:
        err.print("[bold red]every trial failed[/]")
        raise typer.Exit(1)


@app.command()
@with_trial_key_flags
def train(
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the result")] = None,
    tracking_uri: UriOption = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment")] = "slotsweep-train",
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Log nothing")] = False,
    **settings: object,
) -> None:
    """Train one trial in this process (no Ray): the code path every study trial runs."""
    given = {key: value for key, value in settings.items() if value is not None}
    try:
        config = TrialConfig.model_validate(given)
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(p) for p in problem["loc"]) or "(settings)"
            err.print(f"  - --{where.replace('_', '-')}: {problem['msg']}", markup=False)
        raise typer.Exit(2) from None
    from slotsweep.data import DataFormatError, DataNotFoundError
    from slotsweep.preflight import train_problems
    from slotsweep.progress import error_reason
    from slotsweep.trainer import TrialFailed
    from slotsweep.trial_run import TrackingTarget, run_trial

    _preflight(train_problems(config, list(given), json_path,
                              None if no_mlflow else tracking_uri or DEFAULT_TRACKING_URI,
                              experiment))
    target = None
    if not no_mlflow:
        target = TrackingTarget.for_experiment(tracking_uri, experiment)
    show = lambda m: console.print(  # noqa: E731
        f"{m.phase} epoch {m.epoch}: loss {m.train_loss:.4f} train {m.train_accuracy:.4f} "
        f"val {m.val_accuracy:.4f} ({m.epoch_time_s:.1f}s)")
    try:
        outcome = run_trial(config, target, on_epoch=show,
                            on_final=lambda m, _: show(m) if m is not None else None)
    except (DataNotFoundError, DataFormatError, TrialFailed, ValueError) as error:
        # the run's error.txt holds the traceback; the console gets the reason
        err.print("[bold red]trial failed:[/] ", end="")
        err.print(error_reason(error), markup=False)
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
    from slotsweep.preflight import output_problems, tracking_problems
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
    _preflight(output_problems(out, "--out", folder=True)
               + tracking_problems(uri, must_exist=True))
    parent = latest_study_run(uri, name)
    try:
        records = trial_records(uri, name, None if all_runs else parent)
    except LookupError as error:
        err.print(str(error))
        raise typer.Exit(2) from None
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
        from slotsweep.study_summary import summarize_study

        log_artifacts(uri, parent, out)
        summarize_study(uri, name, parent, study, files=[])  # the parent's summary, refreshed
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
    experiment: Annotated[Optional[str], typer.Option(help="Instead of a study file")] = None,
    open_: Annotated[bool, typer.Option(
        "--open", help="Open the printed links in a web browser")] = False,
    workers: Annotated[int, typer.Option(min=1, help="MLflow server processes")] = 1,
) -> None:
    """MLflow's UI on the study's tracking store; prints the links to its latest launch."""
    from slotsweep.preflight import tracking_problems
    from slotsweep.tracking import absolute_tracking_uri

    study = _load(study_file, None) if study_file else None
    uri = absolute_tracking_uri(study.tracking_uri(tracking_uri) if study else tracking_uri)
    _preflight(tracking_problems(uri))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    console.print(f"MLflow UI on http://{shown}:{port} for {uri}", markup=False)
    name = experiment or (study.experiment_name if study else None)
    links = _print_links(uri, name, f"http://{shown}:{port}") if name else []
    sys.stdout.flush()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", host, "--port", str(port), "--workers", str(workers)]
    if open_ and links and os.fork() == 0:  # the child opens the links once the UI answers
        _open_when_up(f"http://{shown}:{port}", links)
        os._exit(0)
    os.execvp(command[0], command)


def _print_links(uri: str, experiment: str, base: str) -> list[str]:
    """Prints (and returns) the links to a study's latest launch; publishes their view state."""
    from slotsweep.tracking import set_experiment_tag, study_coordinates
    from slotsweep.ui_links import SHARED_VIEW_TAG, study_links

    try:
        coords = study_coordinates(uri, experiment)
    except LookupError as error:
        console.print(f"{error}: launch the study first", markup=False)
        return []
    links = study_links(base, coords)
    set_experiment_tag(uri, coords.experiment_id, SHARED_VIEW_TAG + links.share_key,
                       json.dumps(links.view_state))
    finished = sum(t.status == "FINISHED" for t in coords.trials)
    console.print(f"experiment {experiment}, latest launch {coords.parent_run_id}: "
                  f"{len(coords.trials)} trials ({finished} finished); varied: "
                  f"{', '.join(links.varied)}", markup=False)
    console.print(f"trials:  {links.runs}", markup=False, soft_wrap=True)
    if links.compare:
        console.print(f"compare: {links.compare}", markup=False, soft_wrap=True)
    if links.summary:
        console.print(f"summary: {links.summary}", markup=False, soft_wrap=True)
    return [link for link in (links.runs, links.compare) if link]


def _open_when_up(base: str, links: list[str]) -> None:
    """Waits (up to a minute) for the UI to answer, then opens each link in a browser."""
    import time
    import urllib.request
    import webbrowser

    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    for link in links:
        webbrowser.open(link)


@app.command()
def evaluate(
    run_id: str,
    tracking_uri: UriOption = None,
    data_root: Annotated[Optional[str], typer.Option(
        help="Where the data is, if not where the trial found it")] = None,
) -> None:
    """Rebuild a trial run's trained network from its MLflow artifacts and test it."""
    from mlflow.exceptions import MlflowException

    from slotsweep.data import DataNotFoundError
    from slotsweep.evaluate import evaluate_run
    from slotsweep.ticket import TicketError
    from slotsweep.tracking import absolute_tracking_uri

    uri = absolute_tracking_uri(tracking_uri)
    try:
        result = evaluate_run(uri, run_id, data_root)
    except (LookupError, MlflowException, TicketError, DataNotFoundError) as error:
        err.print(f"[bold red]cannot evaluate run {run_id}:[/] {error}")
        raise typer.Exit(2) from None
    recorded = result.recorded_test_accuracy
    console.print(
        f"test accuracy {result.test_accuracy:.6f} on {result.examples} examples (run recorded "
        f"{'-' if recorded is None else f'{recorded:.6f}'}); network file {result.file_bytes} "
        f"bytes (model_size_bytes {result.model_size_bytes:.0f})", markup=False)
    if not result.matches:
        err.print("[bold red]the rebuilt network does not match its run[/]")
        raise typer.Exit(1)
    console.print("[green]matches the run[/]")


def main() -> None:
    """Console entry point."""
    app()
