"""The trainer as a plain function: every method trains, reports epochs, and finetunes."""

import gc
import math

import pytest
import torch

from slotsweep.config import TrialConfig, default_lr
from slotsweep.data import load_data
from slotsweep.train.build import build_model, copy_selected_weights
from slotsweep.train.result import TrialFailed
from slotsweep.train.trainer import train_trial

QUICK = {
    "dataset": "synthetic",
    "epochs": 2,
    "train_subset": 512,
    "batch_size": 64,
    "num_threads": 1,
}


@pytest.mark.parametrize(
    "settings",
    [
        {"method": "slot", "k": 8},
        {"method": "slot", "k": 4, "selection": "probabilistic", "lr": 5.0},
        {"method": "slot", "k": 8, "sharing": "global", "impl": "reference"},
        {"method": "dense"},
        {"method": "edge_popup"},
        {"method": "slot", "k": 2, "arch": "conv2", "sharing": "layer"},
    ],
)
def test_every_method_trains_and_reports_each_epoch(settings):
    reported = []
    result = train_trial(TrialConfig(**QUICK, **settings), reported.append)
    assert [m.epoch for m in reported] == [1, 2] and result.epochs == reported
    assert 0 <= result.test_accuracy <= 1 and result.best_epoch in (1, 2)
    assert result.best_val_accuracy == max(m.val_accuracy for m in reported)
    assert reported[-1].training_cost_flops == result.training_cost_flops > 0
    assert all(math.isfinite(m.train_loss) and m.data_time_s < m.epoch_time_s for m in reported)
    waited = sum(m.data_time_s for m in reported) / sum(m.epoch_time_s for m in reported)
    assert result.final_metrics()["data_time_fraction"] == pytest.approx(waited)
    assert result.params["method"] == settings["method"]
    if settings["method"] == "dense":
        assert result.selection_sha256 is None
    else:
        assert 0 <= reported[-1].selection_change_fraction <= 1


@pytest.mark.slow  # about a hundred steps: two trials on the whole synthetic set
def test_slot_machine_learns_while_k1_cannot():
    learned = train_trial(TrialConfig(**{**QUICK, "train_subset": None}, k=8))
    frozen = train_trial(TrialConfig(**{**QUICK, "train_subset": None}, k=1))
    assert learned.test_accuracy > 0.6
    assert frozen.test_accuracy < 0.3
    assert frozen.epochs[-1].selection_change_fraction == 0


def test_dropout_networks_are_deterministic():
    config = TrialConfig(**{**QUICK, "epochs": 1}, arch="conv2", k=2, dropout=0.5)
    first, second = train_trial(config), train_trial(config)
    assert first.selection_sha256 == second.selection_sha256
    assert first.epochs[0].train_loss == second.epochs[0].train_loss


def test_training_cost_scales_with_epochs():
    one = train_trial(TrialConfig(**{**QUICK, "epochs": 1}))
    two = train_trial(TrialConfig(**QUICK))
    assert two.training_cost_flops == pytest.approx(2 * one.training_cost_flops)


def test_finetuning_starts_from_the_selected_network():
    config = TrialConfig(**QUICK, k=4)
    data = load_data("synthetic", seed=0, train_subset=512)
    slot, dense = build_model(config, data), build_model(config, data, method="dense")
    copy_selected_weights(slot, dense)
    x = torch.randn(5, 1, 28, 28)
    slot.eval(), dense.eval()
    torch.testing.assert_close(dense(x), slot(x))
    result = train_trial(TrialConfig(**QUICK, k=4, finetune_epochs=1))
    phases = [m.phase for m in result.epochs]
    assert phases == ["train", "train", "finetune"]
    assert result.finetune_test_accuracy is not None
    assert result.training_cost_flops == result.epochs[-1].training_cost_flops


def test_nan_loss_fails_the_trial():
    with pytest.raises(TrialFailed, match="nan"):
        train_trial(TrialConfig(**QUICK, method="dense", lr=1e30))


def test_learning_rate_defaults_follow_the_recipes():
    assert default_lr("slot", "greedy", 8, "paper") == 0.2
    assert default_lr("slot", "greedy", 16, "paper") == 0.1
    assert default_lr("slot", "greedy", 8, "authors") == 0.1
    assert default_lr("slot", "greedy", 16, "authors") == 0.01
    assert default_lr("slot", "probabilistic", 8, "paper") == 25
    assert default_lr("dense", "greedy", 8, "paper") == 0.01
    assert TrialConfig(k=32).resolved().lr == 0.1 and TrialConfig(lr=0.3).resolved().lr == 0.3


def test_cuda_request_without_cuda_is_refused():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(TrialFailed, match="CUDA"):
        train_trial(TrialConfig(**QUICK, device="cuda"))


def test_training_runs_with_the_heap_frozen_and_thaws_it():
    frozen_during, kept = [], []

    def report(_):
        frozen_during.append(gc.get_freeze_count())
        kept.append([[] for _ in range(5000)])  # survivors made by a report, as trackers make

    train_trial(TrialConfig(**QUICK), report)
    assert len(frozen_during) == 2 and frozen_during[0] > 10_000  # the imports, at least
    assert frozen_during[1] >= frozen_during[0] + 5000  # the first report's objects joined
    assert gc.get_freeze_count() == 0
