"""A trained network rebuilt from its run's recipe and file, evaluated on the test split."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from slotsweep.config import ResolvedConfig, TrialConfig
from slotsweep.data import BatchLoader
from slotsweep.tracking.tags import NETWORK_TAG
from slotsweep.train.build import EVAL_BATCH, build_model, evaluate, resolve_device, trial_data
from slotsweep.train.ticket import load_ticket


@dataclass(frozen=True)
class Evaluation:
    """The rebuilt network's test accuracy beside what its run recorded."""

    test_accuracy: float
    recorded_test_accuracy: float | None
    file_bytes: int
    model_size_bytes: float | None
    examples: int

    @property
    def matches(self) -> bool:
        """Whether accuracy and file size are exactly the run's."""
        return (
            self.test_accuracy == self.recorded_test_accuracy
            and self.file_bytes == self.model_size_bytes
        )


def rebuilt_test_accuracy(config: ResolvedConfig, ticket: bytes) -> tuple[float, int]:
    """(accuracy, examples) on the test split of the network the recipe and ticket make."""
    if config.num_threads:
        torch.set_num_threads(config.num_threads)  # the trial's threads: the same sums
    device = resolve_device(config.device)
    data = trial_data(config)
    model = build_model(config, data)
    load_ticket(model, ticket)
    loader = BatchLoader(
        data.test, EVAL_BATCH, shuffle=False, mean=data.mean, std=data.std, device=device
    )
    return evaluate(model.to(device), loader), len(data.test.labels)


def evaluate_run(uri: str, run_id: str, data_root: str | None = None) -> Evaluation:
    """Downloads a trial run's network and recipe, rebuilds it and evaluates it (LookupError
    for a run the store does not hold or that holds no network)."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            download = download_network(uri, run_id, Path(folder))
        except MlflowException as error:
            raise LookupError(error.message) from None
        ticket = download.path.read_bytes()
    settings = {
        key: value for key, value in download.config.items() if key in TrialConfig.model_fields
    }
    if data_root:
        settings["data_root"] = data_root
    accuracy, examples = rebuilt_test_accuracy(
        TrialConfig.model_validate(settings).resolved(), ticket
    )
    return Evaluation(
        accuracy,
        download.metrics.get("test_accuracy"),
        len(ticket),
        download.metrics.get("model_size_bytes"),
        examples,
    )


@dataclass(frozen=True)
class NetworkDownload:
    """A trial run's recipe, trained-network file and final metrics, downloaded."""

    config: dict[str, object]
    path: Path
    metrics: dict[str, float]


def download_network(uri: str, run_id: str, folder: Path) -> NetworkDownload:
    """Downloads a trial run's `trial_config.json` and its network file into `folder`."""
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    network = run.data.tags.get(NETWORK_TAG)
    if network is None:
        raise LookupError(
            f"run {run_id} holds no trained network (tag {NETWORK_TAG}): it is "
            f"not a finished slotsweep trial, or older than this feature"
        )
    config = Path(client.download_artifacts(run_id, "trial_config.json", str(folder)))
    path = Path(client.download_artifacts(run_id, network, str(folder)))
    return NetworkDownload(json.loads(config.read_text()), path, dict(run.data.metrics))
