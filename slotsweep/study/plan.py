"""The trial plan of a study, as `slotsweep validate` and `launch --dry-run` print it."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from slotsweep.study.schema import DISCRETE_KINDS, Dimension, Study


def _settings(settings: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items())


def _dimension(key: str, dim: Dimension) -> str:
    if dim.kind in DISCRETE_KINDS:
        return f"{key} in [{', '.join(map(str, dim.values))}]"
    lo, hi = dim.bounds
    note = ", hi excluded" if dim.kind == "randint" else ""
    return f"{key} ~ {dim.kind}({lo:g}, {hi:g}{note})"


def _space(study: Study) -> str:
    return "; ".join(_dimension(key, dim) for key, dim in study.space.items()) or "(trial as is)"


def plan_table(study: Study) -> Table:
    """One row per group of trials: how many, the settings that set it apart, the seeds."""
    table = Table(title=f"{study.name}: {study.trial_count()} trials")
    table.caption = f"every trial: {_settings(study.trial) or '(defaults)'}"
    for column in ("group", "trials", "varies", "seeds"):
        table.add_column(column, justify="right" if column == "trials" else "left")
    seeds = ", ".join(map(str, study.seeds))
    # the space's groups, then one per baseline (`Study.groups`' order)
    space = study.groups[: len(study.groups) - len(study.baselines)]
    if study.search.algorithm == "optuna":
        table.add_row(
            "optuna search", str(study.searched_trial_count()), _space(study), str(study.seeds[0])
        )
    else:
        name = "grid" if study.search.algorithm == "grid" else "random search"
        table.add_row(name, str(sum(len(g.seeds) for g in space)), _space(study), seeds)
    for group, baseline in zip(study.groups[len(space) :], study.baselines, strict=True):
        table.add_row(group.path, str(len(group.seeds)), _settings(baseline), seeds)
    return table


def plan_summary(study: Study, tracking_uri: str | None = None) -> str:
    """How the study runs: trial counts, search, scheduler, resources and tracking."""
    search, scheduler, resources = study.search, study.scheduler, study.resources
    searched = study.searched_trial_count()
    fixed = study.trial_count() - searched
    how = search.algorithm
    if search.algorithm != "grid":
        sampler = f", sampler {search.sampler}" if search.algorithm == "optuna" else ""
        how += f" ({search.num_samples} samples{sampler}, seed {search.seed})"
    objectives = ", ".join(
        f"{m} ({mode})" for m, mode in zip(search.metric, search.mode, strict=True)
    )
    stopping = scheduler.name
    if scheduler.name == "asha":
        stopping += (
            f" (grace_period {scheduler.grace_period}, reduction_factor "
            f"{scheduler.reduction_factor:g}, max_t {study.scheduler_max_t()})"
        )
    per_trial = f"cpu {resources.cpu:g}, gpu {resources.gpu:g}"
    return "\n".join(
        [
            f"study {study.name}: {fixed + searched} trials ({fixed} fixed, {searched} searched)",
            f"search: {how}; objective: {objectives}",
            f"scheduler: {stopping}",
            f"per trial: {per_trial}; max_concurrent {study.max_concurrent}",
            f"tracking: {study.tracking_uri(tracking_uri)}, experiment {study.experiment_name}",
        ]
    )
