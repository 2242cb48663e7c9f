"""The `slotsweep` command line: one module per group of commands, registered on one Typer app
(`common`); the `train` flags are generated from `TrialConfig` (`flags`)."""

from __future__ import annotations

from slotsweep.cli import results, study, train, ui  # noqa: F401 - each registers its commands
from slotsweep.cli.common import app


def main() -> None:
    """Console entry point."""
    app()
