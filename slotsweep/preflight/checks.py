"""Pre-flight checks: what `validate`, `launch`, `train` and `report` verify before they create
anything (an MLflow store or run, a Ray session, a results folder).

Static checks read only the study and the command line: every number finite (pydantic refuses
inf and nan), every followed metric one that every trial reports, every explicit setting one that
takes effect, every output path writable, every training split holding one batch. Environment
checks look at where the trials run: the tracking store answers and can be written, the Ray
cluster can place a trial, the device exists and the data is found. Nothing here waits longer
than `probes.connect_timeout()` on a thing that does not answer.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slotsweep.config import TrialConfig, inapplicable
from slotsweep.preflight.probes import (
    local_cluster_problems,
    output_problems,
    remote_cluster_problems,
    tracking_problems,
    where_trials_run_problems,
)
from slotsweep.study.groups import TrialGroup
from slotsweep.study.schema import Study
from slotsweep.train.result import metrics_every_trial_reports

# --- static checks ---


def _ignored(config: TrialConfig, key: str) -> str | None:
    """Why an explicit `key` takes no effect in this trial, or None when it does."""
    reason = inapplicable(config, key)
    if reason is None and key == "impl" and config.impl == "fused" and config.selection != "greedy":
        # a value that falls back, not a key that does not apply
        return "the fused update serves greedy selection only; probabilistic runs the reference"
    return reason


def ignored_setting_problems(groups: Sequence[TrialGroup]) -> list[str]:
    """Explicit settings that take effect in none of the trials they reach."""
    reasons: dict[str, list[str | None]] = {}
    values: dict[str, Any] = {}
    for group in groups:
        config = group.config(group.seeds[0])
        for key, where in group.origin.items():
            reasons.setdefault(where, []).append(_ignored(config, key))
            values[where] = group.settings[key]
    return [
        f"{where}: {values[where]!r} would be ignored: {found[0]}"
        for where, found in reasons.items()
        if all(found)
    ]


def _device_problem(name: str) -> str | None:
    """A device string torch cannot parse (a misspelt name)."""
    if name in ("auto", "cpu"):
        return None
    import torch

    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return f"{name!r} is not a device; use auto, cpu, cuda or cuda:N"
    return None


def _dataset_size(dataset: str) -> int | None:
    """Training examples of a data set known without reading it (the synthetic set's)."""
    if dataset != "synthetic":
        return None
    from slotsweep.data.synthetic import make_synthetic

    return inspect.signature(make_synthetic).parameters["n_train"].default


def split_problems(group: TrialGroup) -> list[str]:
    """A training split that cannot hold one batch, or a validation split left empty."""
    config = group.config(group.seeds[0]).resolved()
    full = _dataset_size(config.dataset)
    if full is not None and config.train_subset and config.train_subset > full:
        return [
            f"{group.where('train_subset')}: {config.train_subset} exceeds the {full} "
            f"training examples of {config.dataset}"
        ]
    n = config.train_subset or full
    if n is None:
        return []
    fraction = config.val_fraction
    held = round(n * fraction)
    if not 0 < held < n:
        return [
            f"{group.where('train_subset')}: {n} examples with val_fraction {fraction} "
            "leave an empty split; give more examples"
        ]
    if n - held < config.batch_size:
        return [
            f"{group.where('batch_size')}: {config.batch_size} exceeds the {n - held} "
            f"training examples ({n} minus {held} for validation): not one full batch; "
            "lower batch_size or raise train_subset"
        ]
    return []


def group_problems(groups: Sequence[TrialGroup]) -> list[str]:
    """Per-trial static checks: devices, splits, and settings that would be ignored."""
    problems = []
    for group in groups:
        device = group.settings.get("device", "auto")
        if (found := _device_problem(device)) is not None:
            problems.append(f"{group.where('device')}: {found}")
        problems += split_problems(group)
    return problems + ignored_setting_problems(groups)


def metric_problems(study: Study) -> list[str]:
    """Search (and scheduler) metrics that some report of some trial would not hold."""
    known = metrics_every_trial_reports()
    follower = "the search and scheduler" if study.scheduler.name == "asha" else "the search"
    several = len(study.search.metric) > 1
    return [
        f"search.metric{f'[{i}]' * several}: {name!r} is not reported by every trial at "
        f"every epoch, as {follower} needs; use one of {', '.join(known)}"
        for i, name in enumerate(study.search.metric)
        if name not in known
    ]


def _unused_section_keys(study: Study) -> list[str]:
    problems = []
    if study.scheduler.name == "fifo":
        problems += [
            f"scheduler.{key}: applies to scheduler asha only"
            for key in sorted(study.scheduler.model_fields_set - {"name"})
        ]
    if study.search.algorithm == "grid" and "seed" in study.search.model_fields_set:
        problems.append("search.seed: grid search draws nothing; applies to random and optuna")
    return problems


def study_problems(study: Study, tracking_uri: str | None = None) -> list[str]:
    """Every static problem of a valid study (run by `validate` and `launch`), its store's
    scheme and local path included."""
    groups = study.groups
    problems = metric_problems(study) + _unused_section_keys(study) + group_problems(groups)
    problems += tracking_problems(study.tracking_uri(tracking_uri), probe=False)
    if study.resources.gpu == 0:
        problems += [
            f"{g.where('device')}: {g.settings['device']!r} needs resources.gpu > 0 "
            "(Ray shows a trial only the GPUs it reserves)"
            for g in groups
            if str(g.settings.get("device", "")).startswith("cuda")
        ]
    return problems


# --- the environment: where the trials run ---


RAY_RESOURCES = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}


def _needed(study: Study) -> dict[str, float]:
    """What one trial reserves, by Ray's resource names (declared, non-zero entries)."""
    declared = study.resources.model_dump()
    return {RAY_RESOURCES.get(k, k): float(v) for k, v in declared.items() if v}


def trial_checks(groups: Sequence[TrialGroup]) -> list[dict[str, Any]]:
    """What the environment checks need of each group: device and data, and where they came from."""
    checks = []
    for group in groups:
        root = group.settings.get("data_root")
        check = {
            "device": group.settings.get("device", "auto"),
            "dataset": group.settings.get("dataset", "fashion_mnist"),
            "data_root": str(Path(root).expanduser().resolve()) if root else None,
            "train_subset": group.settings.get("train_subset"),
            "where_device": group.where("device"),
            "where_data": group.where("dataset"),
            "where_subset": group.where("train_subset"),
        }
        if check not in checks:
            checks.append(check)
    return checks


def environment_problems(
    study: Study,
    *,
    address: str | None,
    num_cpus: int | None,
    tracking_uri: str | None,
    num_gpus: int | None = None,
) -> list[str]:
    """The store, the cluster, the devices and the data, each probed within the limit; the
    store and the cluster at once, so that two dead ones cost one wait."""
    checks = trial_checks(study.groups)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        store = pool.submit(tracking_problems, study.tracking_uri(tracking_uri))
        if address:
            cluster = remote_cluster_problems(_needed(study), address, checks)
        else:
            cluster = local_cluster_problems(
                _needed(study), num_cpus, num_gpus
            ) or where_trials_run_problems(checks)
        return store.result() + cluster


MIN_FREE_STORAGE_BYTES = 256 * 2**20  # below this, the first checkpoints fill the disk


def storage_problems(storage: str) -> list[str]:
    """The Tune storage the launch will write checkpoints to: a folder writable, with room
    (a URI such as s3://... is the cluster's to check)."""
    if "://" in storage:
        return []
    path = Path(storage).expanduser()
    problems = output_problems(path, "storage (checkpoints)", folder=True)
    if problems:
        return problems
    existing = path if path.exists() else next(p for p in path.resolve().parents if p.exists())
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_STORAGE_BYTES:
        return [
            f"storage (checkpoints) {path.resolve()}: only {free / 2**20:.0f} MiB free on its "
            f"disk (need {MIN_FREE_STORAGE_BYTES / 2**20:.0f} MiB or more)"
        ]
    return []


def launch_problems(
    study: Study, *, address: str | None, num_cpus: int | None, storage: str = "ray_results"
) -> list[str]:
    """What the launch command adds to the study's static checks (`storage`: the Tune storage
    the launch will use: --storage, else the study's, else ray_results)."""
    problems = storage_problems(storage)
    if address and num_cpus:
        problems.append("--num-cpus: applies to a local Ray; the cluster at --address has its own")
    return problems


def train_problems(
    config: TrialConfig,
    given: Sequence[str],
    json_path: Path | None,
    tracking_uri: str | None,
    experiment: str = "slotsweep-train",
) -> list[str]:
    """`slotsweep train`'s checks: the flags, the --json path, the device, the data, the store
    (None: nothing is logged)."""
    settings = config.model_dump()
    flags = {key: f"--{key.replace('_', '-')}" for key in given}
    group = TrialGroup("flags", settings, flags, (config.seed,), flags=True)
    problems = group_problems([group])
    if tracking_uri is not None and not experiment.strip():
        problems.append("--experiment: give a name")
    if json_path is not None:
        problems += output_problems(json_path, "--json")
    if not problems:
        problems = where_trials_run_problems(trial_checks([group]))
    if tracking_uri is not None:
        problems += tracking_problems(tracking_uri)
    return problems
