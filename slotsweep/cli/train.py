"""`slotsweep train`: one trial in this process, without Ray, through the code path every study
trial runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError

from slotsweep.cli.common import UriOption, app, console, err, exit_on_problems
from slotsweep.cli.flags import with_trial_key_flags
from slotsweep.config import TrialConfig
from slotsweep.registry import DEFAULT_TRACKING_URI


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
    from slotsweep.launch.progress import error_reason
    from slotsweep.launch.trial import run_trial
    from slotsweep.preflight.checks import train_problems
    from slotsweep.tracking.store import TrackingTarget
    from slotsweep.train.result import TrialFailed

    exit_on_problems(
        train_problems(
            config,
            list(given),
            json_path,
            None if no_mlflow else tracking_uri or DEFAULT_TRACKING_URI,
            experiment,
        )
    )
    target = None
    if not no_mlflow:
        target = TrackingTarget.for_experiment(tracking_uri, experiment)
    show = lambda m: console.print(  # noqa: E731
        f"{m.phase} epoch {m.epoch}: loss {m.train_loss:.4f} train {m.train_accuracy:.4f} "
        f"val {m.val_accuracy:.4f} ({m.epoch_time_s:.1f}s)"
    )
    try:
        outcome = run_trial(
            config, target, on_epoch=show, on_final=lambda m, _: show(m) if m is not None else None
        )
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
