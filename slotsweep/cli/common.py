"""The command line's shared parts: the Typer app, the consoles, the options several commands
take, and how a bad study or a failed pre-flight check ends a command (exit code 2)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from slotsweep.registry import DEFAULT_TRACKING_URI
from slotsweep.study.file import load_study
from slotsweep.study.schema import Study, StudyError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Hyperparameter studies and sweeps for slot machines.",
)
# Piped or logged output gets a wide console, so the comparison table keeps one line per row,
# unless COLUMNS says how wide (Rich reads it when no width is given).
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() or "COLUMNS" in os.environ else 160)

SetOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set", help="Override a study key by dotted path, VALUE as YAML: --set trial.epochs=1"
    ),
]
PresetOption = Annotated[
    Optional[str],
    typer.Option("--preset", help="Apply the study file's named preset (e.g. quick) before --set"),
]
UriOption = Annotated[
    Optional[str],
    typer.Option(
        "--tracking-uri", help=f"MLflow store (default: the study's, else {DEFAULT_TRACKING_URI})"
    ),
]


def load_or_exit(path: Path, overrides: list[str] | None, preset: str | None = None) -> Study:
    """The validated study, or every problem printed and exit code 2."""
    try:
        return load_study(path, overrides or (), preset)
    except StudyError as error:
        err.print(f"[bold red]invalid study[/] {error.source}:")
        for problem in error.problems:
            err.print(f"  - {problem}", markup=False)
        raise typer.Exit(2) from None


def checked_or_exit(
    path: Path, overrides: list[str] | None, tracking_uri: str | None, preset: str | None = None
) -> Study:
    """The validated study that also passes the static pre-flight checks, else exit code 2."""
    from slotsweep.preflight.checks import study_problems

    study = load_or_exit(path, overrides, preset)
    # several groups may share a fault
    problems = list(dict.fromkeys(study_problems(study, tracking_uri)))
    if problems:
        err.print(f"[bold red]invalid study[/] {path}:")
        for problem in problems:
            err.print(f"  - {problem}", markup=False)
        raise typer.Exit(2)
    return study


def exit_on_problems(problems: list[str]) -> None:
    """Exit code 2 with one line per problem, when a pre-flight check failed."""
    if problems:
        err.print("[bold red]pre-flight failed[/] (nothing was started):")
        for problem in problems:
            err.print(f"  - {problem}", markup=False)
        raise typer.Exit(2)


AddressOption = Annotated[Optional[str], typer.Option(help="Existing Ray cluster address")]
NumCpusOption = Annotated[
    Optional[int], typer.Option(min=1, help="CPUs of the local Ray (default: all)")
]
