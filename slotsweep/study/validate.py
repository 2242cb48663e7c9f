"""Validating a study document: every problem of it, each named by its key path."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from slotsweep.config import TrialConfig, runtime_keys, trial_key
from slotsweep.study.schema import (
    DISCRETE_KINDS,
    Dimension,
    SchedulerSpec,
    SearchSpec,
    Study,
    StudyError,
)

# --- validation: every problem of a document, each named by its key path ---


def _dotted(loc: Sequence[str | int]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def _errors(exc: ValidationError, trial_keys: bool = False) -> list[tuple[list[Any], str]]:
    """(loc, message) per pydantic error, with unknown keys named."""
    # A fixed section's unknown key is located at the section; a trial key is a name of its
    # own (as in `space`), so it is located at itself, like a bad value.
    errors = []
    for error in exc.errors():
        loc, message = list(error["loc"]), error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown {'trial ' * trial_keys}key '{loc[-1]}'"
            loc = loc if trial_keys else loc[:-1]
        errors.append((loc, message))
    return errors


def _config_errors(settings: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(trial key, or None for a combination, message) per way settings fail TrialConfig."""
    try:
        TrialConfig.model_validate(settings)
    except ValidationError as exc:
        return [(str(loc[0]) if loc else None, msg) for loc, msg in _errors(exc, trial_keys=True)]
    return []


def _override_problems(
    path: str, overrides: dict[str, Any], base: dict[str, Any], known: set[str]
) -> list[str]:
    """Problems of `overrides` on top of `base`, each named by the override key behind it."""
    problems = [f"{path}.seed: seeds come from the top-level 'seeds' list"] * ("seed" in overrides)
    for key, message in _config_errors({**base, **overrides}):
        if key in overrides:
            problems.append(f"{path}.{key}: {message}")
        elif key is None and message not in known:
            problems.append(f"{path}: {message}")
    return problems


def _dimension_problems(
    key: str, dim: Dimension, base: dict[str, Any], known: set[str]
) -> list[str]:
    """Problems of one space dimension: its key, its kind against the key's type, its values."""
    path, field = f"space.{key}", TrialConfig.model_fields.get(key)
    if field is None:
        return [f"{path}: unknown trial key '{key}'"]
    if key == "seed":
        return [f"{path}: cannot vary here; seeds come from the top-level 'seeds' list"]
    if key in runtime_keys():  # trials differing only here would share one trial_key
        return [f"{path}: cannot vary, as it does not change results; set it in trial"]
    if dim.kind in ("uniform", "loguniform") and float not in (
        field.annotation,
        *get_args(field.annotation),
    ):
        return [f"{path}.{dim.kind}: samples floats, but {key} takes none; use randint or choice"]
    return [
        f"{path}.{dim.kind}[{i}]: {message}"
        for i, value in enumerate(dim.probe_values())
        for error_key, message in _config_errors({**base, key: value})
        if error_key == key or (error_key is None and message not in known)
    ]


def _settings_problems(raw: dict[str, Any], dims: dict[str, Dimension]) -> list[str]:
    """Check trial, space and baselines against TrialConfig."""
    trial, baselines = raw.get("trial", {}), raw.get("baselines", [])
    if not isinstance(trial, dict):
        return []
    problems = _override_problems("trial", trial, {}, set())
    # Later checks build on the trial's good keys only, so that each fault is reported once.
    bad = {key for key, _ in _config_errors(trial)} | {"seed"}
    base = {key: value for key, value in trial.items() if key not in bad}
    known = {message for _, message in _config_errors(base)}
    for key, dim in dims.items():
        problems += _dimension_problems(str(key), dim, base, known)
    for i, baseline in enumerate(baselines if isinstance(baselines, list) else []):
        if isinstance(baseline, dict):
            problems += _override_problems(f"baselines[{i}]", baseline, base, known)
    return problems


def _valid(model: type[BaseModel], value: Any) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError:
        return None  # the whole-study pass reports why


def _cross_problems(raw: dict[str, Any], dims: dict[str, Dimension]) -> list[str]:
    """Checks between keys: the search's own, the space against the algorithm, asha's metric."""
    search = _valid(SearchSpec, raw.get("search", {}))
    scheduler = _valid(SchedulerSpec, raw.get("scheduler", {})) or SchedulerSpec()
    if search is None:
        return []
    several, grid = len(search.metric) > 1, search.algorithm == "grid"
    optuna = search.algorithm == "optuna"
    checks = {
        "search.metric: several objectives need algorithm optuna": several and not optuna,
        "search.mode: give one per metric": len(search.mode) != len(search.metric),
        "search.sampler: applies to algorithm optuna only": not optuna
        and "sampler" in search.model_fields_set,
        "search.sampler: gp follows one objective; use tpe or nsga2": search.sampler == "gp"
        and several,
        "search.num_samples: grid runs each point once per seed": grid and search.num_samples > 1,
        "search.num_samples: more than the space's distinct points": search.algorithm == "random"
        and math.prod(dim.size() for dim in dims.values()) < search.num_samples,
        "scheduler.name: asha follows a single metric": scheduler.name == "asha" and several,
    }
    for key, dim in dims.items():
        ranged = dim.kind not in DISCRETE_KINDS
        checks[f"space.{key}.{dim.kind}: needs search.algorithm random or optuna"] = grid and ranged
        checks[f"space.{key}.grid: {search.algorithm} search samples; use choice"] = (
            not grid and dim.kind == "grid"
        )
    return [message for message, failed in checks.items() if failed]


def _study_problems(study: Study) -> list[str]:
    """Checks of a study valid part by part: fixed trials build and differ, asha fits."""
    problems, paths = [], {}
    for group in (group for group in study.groups if group.runs):
        for seed in group.seeds:
            settings = {**group.settings, "seed": seed}
            errors = [f"{group.path}: {message}" for _, message in _config_errors(settings)]
            if errors:  # a combination of good values: one failing point stands for the rest
                problems += [] if problems else errors
                continue
            key = trial_key(group.config(seed).resolved())
            problems += [f"{group.path}: same trial as {paths[key]}"] if key in paths else []
            paths.setdefault(key, group.path)
    if study.scheduler.name == "asha" and study.scheduler.grace_period > study.scheduler_max_t():
        problems.append(f"scheduler.grace_period: exceeds max_t ({study.scheduler_max_t()})")
    return problems


def parse_study(raw: Any, source: str = "<study>") -> Study:
    """Validate a study document as YAML loads it; raise StudyError listing every problem."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise StudyError([f"(top level): expected a mapping, not {type(raw).__name__}"], source)
    study, problems = None, []
    try:
        study = Study.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{_dotted(loc) or '(top level)'}: {message}" for loc, message in _errors(exc)]
    # Sections are checked again one by one, so that one bad section hides no other problem.
    space = raw.get("space", {})
    dims = {
        key: dim
        for key, value in (space.items() if isinstance(space, dict) else ())
        if (dim := _valid(Dimension, value)) is not None
    }
    problems += _settings_problems(raw, dims) + _cross_problems(raw, dims)
    if study is not None and not problems:
        problems = _study_problems(study)
    if problems:
        raise StudyError(problems, source)
    return study
