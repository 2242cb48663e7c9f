"""`slotsweep ui` (MLflow's UI with links to a study's latest launch) and `slotsweep evaluate`
(a logged network rebuilt and tested)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from slotsweep.cli.common import UriOption, app, console, err, exit_on_problems, load_or_exit


@app.command()
def ui(
    study_file: Annotated[Optional[Path], typer.Argument()] = None,
    tracking_uri: UriOption = None,
    port: int = 5000,
    host: str = "127.0.0.1",
    experiment: Annotated[Optional[str], typer.Option(help="Instead of a study file")] = None,
    open_: Annotated[
        bool, typer.Option("--open", help="Open the printed links in a web browser")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="MLflow server processes")] = 1,
) -> None:
    """MLflow's UI on the study's tracking store; prints the links to its latest launch."""
    from slotsweep.preflight.checks import tracking_problems
    from slotsweep.study.store import absolute_tracking_uri

    study = load_or_exit(study_file, None) if study_file else None
    uri = absolute_tracking_uri(study.tracking_uri(tracking_uri) if study else tracking_uri)
    exit_on_problems(tracking_problems(uri))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    console.print(f"MLflow UI on http://{shown}:{port} for {uri}", markup=False)
    name = experiment or (study.experiment_name if study else None)
    links = _print_links(uri, name, f"http://{shown}:{port}") if name else []
    sys.stdout.flush()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if open_ and links and os.fork() == 0:  # the child opens the links once the UI answers
        _open_when_up(f"http://{shown}:{port}", links)
        os._exit(0)
    os.execvp(command[0], command)


def _print_links(uri: str, experiment: str, base: str) -> list[str]:
    """Prints (and returns) the links to a study's latest launch; publishes their view state."""
    from slotsweep.tracking.links import COMPARED_BY, SHARED_VIEW_TAG, study_links
    from slotsweep.tracking.queries import set_experiment_tag, study_coordinates

    try:
        coords = study_coordinates(uri, experiment)
    except LookupError as error:
        console.print(f"{error}: launch the study first", markup=False)
        return []
    links = study_links(base, coords)
    set_experiment_tag(
        uri, coords.experiment_id, SHARED_VIEW_TAG + links.share_key, json.dumps(links.view_state)
    )
    finished = sum(t.status == "FINISHED" for t in coords.trials)
    console.print(
        f"experiment {experiment}, latest launch {coords.parent_run_id}: "
        f"{len(coords.trials)} trials ({finished} finished); varied: "
        f"{', '.join(links.varied)}",
        markup=False,
    )
    console.print(f"trials:  {links.runs}", markup=False, soft_wrap=True)
    if links.compare:
        console.print(
            f"compare: {links.compare}  (the best {links.compared} of {len(coords.trials)} "
            f"trials by {COMPARED_BY})",
            markup=False,
            soft_wrap=True,
        )
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
    data_root: Annotated[
        Optional[str], typer.Option(help="Where the data is, if not where the trial found it")
    ] = None,
) -> None:
    """Rebuild a trial run's trained network from its MLflow artifacts and test it."""
    from slotsweep.data import DataNotFoundError
    from slotsweep.study.store import absolute_tracking_uri
    from slotsweep.tracking.evaluate import evaluate_run
    from slotsweep.train.ticket import TicketError

    uri = absolute_tracking_uri(tracking_uri)
    try:
        result = evaluate_run(uri, run_id, data_root)
    except (LookupError, TicketError, DataNotFoundError) as error:
        err.print(f"[bold red]cannot evaluate run {run_id}:[/] {error}")
        raise typer.Exit(2) from None
    recorded = result.recorded_test_accuracy
    console.print(
        f"test accuracy {result.test_accuracy:.6f} on {result.examples} examples (run recorded "
        f"{'-' if recorded is None else f'{recorded:.6f}'}); network file {result.file_bytes} "
        f"bytes (model_size_bytes {result.model_size_bytes:.0f})",
        markup=False,
    )
    if not result.matches:
        err.print("[bold red]the rebuilt network does not match its run[/]")
        raise typer.Exit(1)
    console.print("[green]matches the run[/]")
