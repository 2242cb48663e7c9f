"""`slotsweep validate` and `slotsweep launch`: a study checked, planned and run."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer
from rich.text import Text

if TYPE_CHECKING:
    from slotsweep.launch.launcher import LaunchOptions, LaunchSummary
from slotsweep.cli.common import (
    AddressOption,
    NumCpusOption,
    PresetOption,
    SetOption,
    UriOption,
    app,
    checked_or_exit,
    console,
    err,
    exit_on_problems,
)
from slotsweep.launch.timing import launch_timing
from slotsweep.study.schema import Study


@app.command()
def validate(
    study_file: Path,
    set_: SetOption = None,
    preset: PresetOption = None,
    check_env: Annotated[
        bool,
        typer.Option(
            help="Also check the store, the cluster, the devices and the data, as launch does"
        ),
    ] = False,
    address: AddressOption = None,
    tracking_uri: UriOption = None,
    num_cpus: NumCpusOption = None,
) -> None:
    """Check a study file (and every preset in it) and print its trial plan."""
    from slotsweep.preflight.checks import environment_problems
    from slotsweep.study.plan import plan_summary, plan_table

    study = checked_or_exit(study_file, set_, tracking_uri, preset)
    console.print(plan_table(study))
    console.print(plan_summary(study), markup=False)
    if check_env:
        exit_on_problems(
            environment_problems(
                study, address=address, num_cpus=num_cpus, tracking_uri=tracking_uri
            )
        )
    console.print(f"[green]{study_file} is valid[/]: {study.trial_count()} trials")


def _print_closing(study: Study, summary: LaunchSummary, slots: int) -> None:
    """What a launch ends with: the comparison, the failed trials (one line each), the time."""
    from slotsweep.cli.results import print_comparison
    from slotsweep.launch.progress import distinguishing_keys, failures_table, trial_name
    from slotsweep.report import compare
    from slotsweep.tracking.notices import fault_notices
    from slotsweep.tracking.queries import trial_records
    from slotsweep.tracking.summary import search_objectives

    records = trial_records(summary.tracking_uri, summary.experiment, summary.parent_run_id)
    # a search of several objectives ends with its front first, as `report` prints it
    print_comparison(compare(records), f"study {study.name}", objectives=search_objectives(study))
    keys = distinguishing_keys([r.params for r in records])
    failed = failures_table(
        [
            (r.run_id[:8], trial_name(r.params, keys), r.error or "")
            for r in records
            if r.status == "FAILED"
        ]
    )
    if failed is not None:
        console.print(failed)
    for line in fault_notices(summary.tracking_uri, summary.experiment, summary.parent_run_id):
        err.print(line, style="yellow", markup=False, highlight=False)
    console.print(launch_timing(summary, records, slots))


def resume_command() -> str:
    """This launch's command line with `--resume`: what goes on after a stop."""
    args = [arg for arg in sys.argv[1:] if arg != "--resume"]
    return shlex.join(["slotsweep", *args, "--resume"])


def _stopped(study: Study, summary: LaunchSummary | None, signal_name: str) -> NoReturn:
    """The last line of a launch stopped by a signal, and its exit code."""
    from slotsweep.launch.stop import STOPPED_EXIT_CODE, stopped_line
    from slotsweep.tracking.queries import trial_records

    stopped = finished = 0
    if summary is not None:
        records = trial_records(summary.tracking_uri, summary.experiment, summary.parent_run_id)
        stopped = sum(record.status == "KILLED" for record in records)
        finished = sum(record.status == "FINISHED" for record in records)
    left = max(0, study.trial_count() - finished)
    line = stopped_line(stopped, finished, left, resume_command())
    # one line however wide the terminal, and no markup: the command is copied as it is
    err.print(Text.assemble((signal_name, "bold yellow"), ": ", line), soft_wrap=True)
    raise typer.Exit(STOPPED_EXIT_CODE)


EXIT_CODES = (
    "Exit codes: 0 the study finished (some trials may have failed; they are listed); "
    "1 every trial failed; 2 invalid input or failed pre-flight (nothing started); "
    "3 stopped by SIGTERM or SIGINT (trials checkpointed, runs KILLED; go on with --resume)."
)


@app.command(epilog=EXIT_CODES)
def launch(
    study_file: Path,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted study")] = False,
    address: AddressOption = None,
    tracking_uri: UriOption = None,
    max_concurrent: Annotated[Optional[int], typer.Option(min=1)] = None,
    num_cpus: NumCpusOption = None,
    num_gpus: Annotated[
        Optional[int], typer.Option(min=0, help="GPUs of the local Ray (default: those Ray finds)")
    ] = None,
    storage: Annotated[
        Optional[str],
        typer.Option(
            help="Tune storage for checkpoints: a folder (shared on a cluster) or a URI such as "
            "s3://bucket/path (default: the study's storage, else ray_results)"
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and print the plan only")] = False,
    set_: SetOption = None,
    preset: PresetOption = None,
    grace_period: Annotated[
        Optional[float],
        typer.Option(
            min=0, help="After SIGTERM/SIGINT: seconds trials get to save and stop (default 30)"
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="If the study is being launched already, wait for that launch")
    ] = False,
    allow_changes: Annotated[
        bool, typer.Option(help="With --resume: run trials the changed study alters as new trials")
    ] = False,
) -> None:
    """Run a study: Ray Tune trials, MLflow runs, a live view and a closing comparison.

    SIGTERM or SIGINT (Ctrl-C) stops it gracefully: running trials save a checkpoint at the end
    of their epoch (within --grace-period), then exit code 3; a second signal stops at once."""
    from slotsweep.launch.launcher import DEFAULT_STORAGE, LaunchOptions
    from slotsweep.study.plan import plan_summary, plan_table

    study = checked_or_exit(study_file, set_, tracking_uri, preset)
    console.print(plan_table(study))
    console.print(plan_summary(study, tracking_uri), markup=False)
    if dry_run:
        return
    options = LaunchOptions(
        address=address,
        tracking_uri=tracking_uri,
        max_concurrent=max_concurrent,
        resume=resume,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        storage_path=storage or study.storage or DEFAULT_STORAGE,
        **({} if grace_period is None else {"grace_s": grace_period}),
    )
    _locked_launch(study, options, wait=wait, allow_changes=allow_changes)


def _locked_launch(
    study: Study, options: LaunchOptions, *, wait: bool, allow_changes: bool
) -> None:
    """The launch under the study's lock: checked (the pre-flight; on --resume the store made
    safely, then a changed study refused), run, and ended with its exit code."""
    from slotsweep.launch.lock import StudyLocked, study_lock
    from slotsweep.preflight.checks import environment_problems, launch_problems
    from slotsweep.study.store import absolute_tracking_uri
    from slotsweep.tracking.store import prepare_store, quiet_mlflow_output

    uri = absolute_tracking_uri(study.tracking_uri(options.tracking_uri))
    quiet_mlflow_output()
    where = {"address": options.address, "num_cpus": options.num_cpus}
    exit_on_problems(
        launch_problems(study, storage=options.storage_path, **where)
        or environment_problems(
            study, tracking_uri=options.tracking_uri, num_gpus=options.num_gpus, **where
        )
    )
    try:
        with study_lock(uri, study.name, wait=wait, say=lambda line: err.print(line, markup=False)):
            if options.resume:  # a changed study is refused before anything starts
                prepare_store(uri)
                _exit_on_changes(uri, study, allow_changes)
            _run(study, options)  # a new store is made while Ray starts (`Launcher.run`)
    except StudyLocked as error:
        err.print(f"[bold red]not launched[/]: {error}", highlight=False)
        raise typer.Exit(2) from None


def _exit_on_changes(uri: str, study: Study, allow_changes: bool) -> None:
    from slotsweep.tracking.identity import resume_changes

    changes = resume_changes(uri, study, allow_changes)
    if changes:
        err.print(
            f"[bold red]not resumed[/]: study {study.name} changed since its launch, altering "
            "trials already run (--resume --allow-changes runs them as new trials):"
        )
        for line in changes:
            err.print(f"  - {line}", markup=False, highlight=False)
        raise typer.Exit(2)


def _run(study: Study, options: LaunchOptions) -> None:
    from slotsweep.launch.launcher import Launcher
    from slotsweep.launch.stop import StoppedNow
    from slotsweep.tracking.queries import records_read_once

    launcher = Launcher(study, options, console)
    # the trial runs are read once, after every run has ended: for the parent run's summary,
    # the closing comparison and a stop's last line (seconds each for 1,000 runs on a server)
    with records_read_once():
        try:
            summary = launcher.run()
        except StoppedNow as error:
            _stopped(study, launcher.summary_so_far(), str(error))
        _print_closing(study, summary, options.max_concurrent or study.max_concurrent)
        if summary.stopped_by:
            _stopped(study, summary, summary.stopped_by)
    if summary.trials and summary.failed == summary.trials:
        err.print("[bold red]every trial failed[/]")
        raise typer.Exit(1)
