"""`slotsweep validate` and `slotsweep launch`: a study checked, planned and run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from slotsweep.launch.launcher import LaunchSummary
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
    from slotsweep.tracking.queries import trial_records

    records = trial_records(summary.tracking_uri, summary.experiment, summary.parent_run_id)
    print_comparison(compare(records), f"study {study.name}")
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
    console.print(launch_timing(summary, records, slots))


@app.command()
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
) -> None:
    """Run a study: Ray Tune trials, MLflow runs, a live view and a closing comparison."""
    from slotsweep.preflight.checks import environment_problems, launch_problems
    from slotsweep.study.plan import plan_summary, plan_table

    study = checked_or_exit(study_file, set_, tracking_uri, preset)
    console.print(plan_table(study))
    console.print(plan_summary(study, tracking_uri), markup=False)
    if dry_run:
        return
    exit_on_problems(
        launch_problems(study, address=address, num_cpus=num_cpus)
        or environment_problems(
            study, address=address, num_cpus=num_cpus, tracking_uri=tracking_uri, num_gpus=num_gpus
        )
    )
    from slotsweep.launch.launcher import Launcher, LaunchOptions

    options = LaunchOptions(
        address=address,
        tracking_uri=tracking_uri,
        max_concurrent=max_concurrent,
        resume=resume,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        storage_path=storage,
    )
    summary = Launcher(study, options, console).run()
    _print_closing(study, summary, options.max_concurrent or study.max_concurrent)
    if summary.trials and summary.failed == summary.trials:
        err.print("[bold red]every trial failed[/]")
        raise typer.Exit(1)
