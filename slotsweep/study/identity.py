"""A study's identity: the plan a launch runs (every fixed trial by its trial key, with its
resolved settings; the study as given), its digest, and what a changed study alters.

`--resume` compares the plan recorded by the study's launch with the plan of the file now: a
trial that ran and is no longer in the plan was changed (or dropped), and each study key whose
value differs is named; additions (more seeds, a wider grid, more samples) alter nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from slotsweep.config import runtime_keys, trial_key
from slotsweep.study.schema import Study

# the study keys a trial's settings come from (the rest say how and where the study runs)
_TRIAL_KEYS = ("trial", "space", "seeds", "baselines", "search")
# what a search's trials depend on: a change here alters every Optuna trial that ran
_SEARCH_KEYS = ("trial", "space", "seeds", "search.algorithm", "search.sampler", "search.seed")
_SEARCH_KEYS += ("search.metric", "search.mode")


def study_plan(study: Study) -> dict[str, Any]:
    """The study as launched: its document, its fixed trials' resolved settings by trial key,
    and a digest of both."""
    runtime = set(runtime_keys())
    trials = {}
    for group in study.groups:
        if group.runs:
            for seed in group.seeds:
                resolved = group.config(seed).resolved()
                trials[trial_key(resolved)] = resolved.model_dump(mode="json", exclude=runtime)
    document = study.model_dump(mode="json")
    digest = hashlib.sha256(
        json.dumps({"study": document, "trials": trials}, sort_keys=True).encode()
    ).hexdigest()
    return {"digest": digest, "study": document, "trials": trials}


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flat(inner, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def _is_addition(old: Any, new: Any) -> bool:
    """More of the same: a list (seeds, a grid, baselines) that keeps every earlier entry."""
    return isinstance(old, list) and isinstance(new, list) and all(item in new for item in old)


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def study_changes(old: dict[str, Any], new: dict[str, Any], under: tuple[str, ...]) -> list[str]:
    """'key: old -> new' for each study key under one of `under` whose value changed (not
    by an addition)."""
    before, after = _flat(old), _flat(new)
    lines = []
    for key in sorted(set(before) | set(after)):
        if not any(key == p or key.startswith(p + ".") for p in under):
            continue
        was, now = before.get(key), after.get(key)
        more_samples = key == "search.num_samples" and (now or 0) >= (was or 0)
        if was != now and not (more_samples or _is_addition(was, now)):
            lines.append(f"{key}: {_show(was)} -> {_show(now)}")
    return lines


def _setting_changes(lost: list[dict[str, Any]], plan: dict[str, dict[str, Any]]) -> list[str]:
    """For trials whose study keys did not change (a default changed with the code): the
    settings of each lost trial that differ from its nearest trial in the plan now."""
    lines: list[str] = []
    for settings in lost:
        nearest = min(
            plan.values(),
            key=lambda other: sum(settings.get(k) != other.get(k) for k in settings),
            default={},
        )
        for key in sorted(settings):
            if settings.get(key) != nearest.get(key):
                line = f"{key}: {_show(settings[key])} -> {_show(nearest.get(key))}"
                if line not in lines:
                    lines.append(line)
    return lines


def plan_changes(
    recorded: dict[str, Any], plan: dict[str, Any], ran: set[str], searched: bool
) -> list[str]:
    """Each change of the study that alters a trial already run (`ran`: their trial keys;
    `searched`: whether Optuna trials ran), one line naming the key; [] when none does."""
    lost = [key for key in ran if key in recorded["trials"] and key not in plan["trials"]]
    lines = []
    if lost:
        lines = study_changes(recorded["study"], plan["study"], _TRIAL_KEYS) or _setting_changes(
            [recorded["trials"][key] for key in lost], plan["trials"]
        )
    if searched:
        lines += [
            line
            for line in study_changes(recorded["study"], plan["study"], _SEARCH_KEYS)
            if line not in lines
        ]
    return lines
