"""What a trial logs besides its tags: its resolved settings as params (the same keys for every
method), per-epoch metric names, its data splits as dataset inputs."""

from __future__ import annotations

import json
import math

from mlflow.entities import Dataset, DatasetInput, InputTag

from slotsweep.config import UNSET_PARAM, ResolvedConfig, param_placeholders, require_resolved
from slotsweep.registry import metric_names
from slotsweep.train.result import EpochMetrics

MAX_PARAM_LENGTH = 6000
NO_LOG2_K = -1.0  # what a dense or edge-popup run shows for log2(K) (K itself: 0)
SPLIT_CONTEXT = {"train": "training", "val": "validation", "test": "test"}


def trial_params(config: ResolvedConfig) -> dict[str, str]:
    """Every resolved setting as an MLflow param, the same keys for every method, plus `log2_k`.

    MLflow's parallel-coordinates and scatter plots drop a run that lacks a chosen key and turn a
    numeric axis into categories when one value is not a number. So a dense or edge-popup run
    shows `k` = 0 and `log2_k` = -1 (no candidate values; on a log2 axis just left of K=1), and
    `n/a` for the slot machine's other own settings (`TrialConfig`'s placeholders).
    """
    require_resolved(config, "trial_params")
    values = config.model_dump()
    values["log2_k"] = math.log2(config.k)
    placeholders = param_placeholders(config.method)
    values.update(placeholders)
    if "k" in placeholders:  # no candidate values: on a log2 axis just left of K=1
        values["log2_k"] = NO_LOG2_K
    return {
        key: UNSET_PARAM if value is None else str(value)[:MAX_PARAM_LENGTH]
        for key, value in values.items()
    }


def epoch_metric_values(metrics: EpochMetrics) -> dict[str, float]:
    """Per-epoch metrics under their MLflow names (finetuning's prefixed with `finetune_`)."""
    prefix = "" if metrics.phase == "train" else f"{metrics.phase}_"
    skip = metric_names("running")  # logged once, as final metrics
    return {prefix + key: value for key, value in metrics.metrics().items() if key not in skip}


def network_file(method: str) -> str:
    """The artifact name of a trained network: a ticket, or a dense network's weights."""
    return "weights.bin" if method == "dense" else "ticket.bin"


def dataset_input(summary: dict[str, object]) -> DatasetInput:
    """One split as an MLflow dataset input: name, digest, size and shape in its profile."""
    profile = {key: summary[key] for key in ("examples", "shape", "num_classes")}
    profile["sha256"] = summary["digest"]
    source = json.dumps(
        {"dataset": str(summary["name"]).rsplit("-", 1)[0], "split": summary["split"]}
    )
    dataset = Dataset(
        name=str(summary["name"]),
        digest=str(summary["digest"])[:16],
        source_type="slotsweep",
        source=source,
        profile=json.dumps(profile),
    )
    context = SPLIT_CONTEXT.get(str(summary["split"]), str(summary["split"]))
    return DatasetInput(dataset, [InputTag("mlflow.data.context", context)])
