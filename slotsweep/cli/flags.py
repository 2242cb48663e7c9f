"""`slotsweep train`'s options, one per trial key, generated from `TrialConfig`'s fields."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from slotsweep.config import TrialConfig

Command = Callable[..., None]


def flag_name(key: str) -> str:
    """The option of trial key `key`: `--batch-size` for `batch_size`."""
    return "--" + key.replace("_", "-")


def _option_type(annotation: Any) -> type:
    """The command-line type of a field: bool, int, float, else str (pydantic checks values)."""
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation if annotation in (bool, int, float) else str


def _parameter(name: str, annotation: Any, description: str | None) -> inspect.Parameter:
    kind = _option_type(annotation)
    # a bool key gets both spellings, as its default may be either
    declared = flag_name(name)
    if kind is bool:
        declared += f"/--no-{name.replace('_', '-')}"
    option = typer.Option(declared, help=description)
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[Optional[kind], option],
    )


def trial_key_parameters() -> list[inspect.Parameter]:
    """One keyword-only parameter per trial key, None unless given, helped by its description."""
    return [
        _parameter(name, field.annotation, field.description)
        for name, field in TrialConfig.model_fields.items()
    ]


def with_trial_key_flags(command: Command) -> Command:
    """Gives `command(**settings, ...)` an option per trial key before its own options; Typer
    reads the options from the signature set here."""
    hints = typing.get_type_hints(command, include_extras=True)
    own = [
        parameter.replace(annotation=hints.get(parameter.name, parameter.annotation))
        for parameter in inspect.signature(command).parameters.values()
        if parameter.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    parameters = trial_key_parameters() + [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own
    ]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    return command
