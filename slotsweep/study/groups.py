"""A group of trials: the settings they share (all but the seed) and where the study set each
one. A study is expanded once into these (`Study.groups`); pre-flight, the plan and the launcher
read the same groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slotsweep.config import ResolvedConfig, TrialConfig


@dataclass(frozen=True)
class TrialGroup:
    """Trials that differ only in their seed: a grid or random point, a baseline, an Optuna
    dimension's bound (checked before the search, not run), or a `train` command's flags."""

    path: str  # how errors name it: "space (k=8)", "baselines[0]", "trial"
    settings: dict[str, Any]  # the explicit settings: the trial block and the group's own keys
    origin: dict[str, str]  # key -> where it was set: "trial.k", "space.k", "baselines[0].lr"
    seeds: tuple[int, ...]
    runs: bool = True  # False: an Optuna bound, whose trials the search may or may not propose
    flags: bool = False  # `slotsweep train`: keys are named as its flags

    def where(self, key: str) -> str:
        """Where `key` was set, or where it would be set when it holds its default."""
        if key in self.origin:
            return self.origin[key]
        return f"--{key.replace('_', '-')}" if self.flags else f"trial.{key}"

    def config(self, seed: int) -> TrialConfig:
        """The trial of this group with `seed`, as the study spells it (defaults unresolved)."""
        return TrialConfig.model_validate({**self.settings, "seed": seed})

    def trials(self) -> list[ResolvedConfig]:
        """The group's trials, one per seed, resolved."""
        return [self.config(seed).resolved() for seed in self.seeds]
