"""What a trial reports: per-epoch metrics, the final result (the JSON of `train --json`), and a
finished trial run as a report reads it back. The names come from `registry.METRICS`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from slotsweep.registry import metric_names


@dataclass
class EpochMetrics:
    """One epoch of one training phase ('train', or 'finetune' after a slot phase)."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float
    epoch_time_s: float
    data_time_s: float  # time spent waiting for batches, part of epoch_time_s
    lr: float
    selection_change_fraction: float | None = None
    best_val_accuracy: float = 0.0  # best so far in this phase
    training_cost_flops: float = 0.0  # cumulative over the trial so far
    phase: str = "train"

    def metrics(self) -> dict[str, float]:
        """The numeric metrics, for trackers (epoch and phase excluded)."""
        values = asdict(self)
        return {
            key: float(value)
            for key, value in values.items()
            if key not in ("epoch", "phase") and value is not None
        }


@dataclass
class TrialResult:
    """The result of one trial; `to_dict` is the contract's JSON."""

    test_accuracy: float
    best_val_accuracy: float
    best_epoch: int
    training_cost_flops: float
    memory_state_bytes: int
    peak_memory_bytes: int
    model_size_bytes: int
    train_time_s: float
    params: dict[str, object]
    epochs: list[EpochMetrics] = field(default_factory=list)
    selection_sha256: str | None = None
    finetune_test_accuracy: float | None = None
    device: str = "cpu"
    impl: str = "reference"
    training_memory_bytes: int = 0  # peak above the footprint before data and model were built
    datasets: list[dict[str, object]] = field(default_factory=list)  # per split: size, digest
    # the trained network of the best-validation epoch (see slotsweep.train.ticket); not in the JSON
    ticket: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def data_time_fraction(self) -> float:
        """The share of all epochs' time spent waiting for batches."""
        total = sum(epoch.epoch_time_s for epoch in self.epochs)
        return sum(epoch.data_time_s for epoch in self.epochs) / total if total else 0.0

    def final_metrics(self) -> dict[str, float]:
        """The contract's final metrics, `data_time_fraction`, and finetuning's where it ran."""
        values = {key: float(getattr(self, key)) for key in metric_names(compared=True)}
        values["data_time_fraction"] = self.data_time_fraction
        if self.finetune_test_accuracy is not None:
            values["finetune_test_accuracy"] = self.finetune_test_accuracy
        return values

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary (the ticket is a separate file)."""
        values = asdict(self)
        values.pop("ticket")
        return values


@dataclass(frozen=True)
class TrialRecord:
    """What a report needs of one trial run, as plain values."""

    run_id: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    error: str | None


def metrics_every_trial_reports() -> list[str]:
    """The Tune metrics in every report of every trial: the reported epoch fields that cannot be
    None (a dense epoch has no selection to change). Tune checks a followed metric in each
    report, so only these can be a search's or a scheduler's metric."""
    optional = {f.name for f in fields(EpochMetrics) if f.default is None}
    return [key for key in tune_epoch_keys() if key not in optional]


def tune_epoch_keys() -> tuple[str, ...]:
    """The per-epoch values a trial reports to Ray Tune, for schedulers and searchers to follow
    (read from the registry when asked, so a late registration is seen)."""
    return metric_names("epoch", "running")


class TrialFailed(RuntimeError):
    """Training cannot go on (for example the loss became NaN)."""
