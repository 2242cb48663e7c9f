"""Trial checkpoints: a trial stopped at an epoch boundary and restored ends bit for bit where an
uninterrupted run of it ends (CPU, every method, both selections, with finetuning)."""

import dataclasses

import pytest
import torch

from slotsweep.config import TrialConfig
from slotsweep.tracking import tags
from slotsweep.train.checkpoint import TrainingState, is_due
from slotsweep.train.trainer import train_trial

QUICK = {
    "dataset": "synthetic",
    "epochs": 4,
    "train_subset": 384,
    "batch_size": 64,
    "num_threads": 1,
    "schedule": "cosine",
}
# timing and memory differ between runs; everything else must be identical
UNTIMED = ("train_time_s", "peak_memory_bytes", "training_memory_bytes", "data_time_fraction")


class Interrupted(Exception):
    """Stands in for a lost node: training stops right after a checkpoint was written."""


def _interrupted_then_restored(config, folder, stop_after, every=1):
    """Runs `config` until its `stop_after`-th checkpoint is saved, then restores from disk."""
    saved = []

    def save(state):
        state.save(folder)
        saved.append(state.epochs_done)
        if len(saved) == stop_after:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_trial(config, on_checkpoint=save, checkpoint_every=every)
    state = TrainingState.load(folder)
    assert state.epochs_done == saved[-1]
    reported = []
    result = train_trial(
        config,
        reported.append,
        resume_from=state,
        checkpoint_every=every,
        on_checkpoint=lambda s: s.save(folder),
    )
    return result, reported, state


def _comparable(result):
    values = dataclasses.asdict(result)
    for key in UNTIMED:
        values.pop(key, None)
    values["epochs"] = [
        {k: v for k, v in e.items() if k not in ("epoch_time_s", "data_time_s")}
        for e in values["epochs"]
    ]
    return values


@pytest.mark.slow
@pytest.mark.parametrize(
    ("settings", "stop_after"),
    [
        ({"method": "slot", "k": 8}, 2),  # GS, the fused native update
        ({"method": "slot", "k": 8, "impl": "reference"}, 1),  # GS, autograd and torch SGD
        ({"method": "slot", "k": 4, "selection": "probabilistic", "lr": 5.0}, 2),  # PS sampling
        ({"method": "dense"}, 3),
        ({"method": "dense", "arch": "conv2", "epochs": 2, "train_subset": 128}, 1),  # dropout
        ({"method": "edge_popup"}, 1),
        ({"method": "slot", "k": 4, "finetune_epochs": 3}, 2),  # stop in the slot phase
        ({"method": "slot", "k": 4, "finetune_epochs": 3}, 5),  # stop in finetuning
    ],
)
def test_a_restored_trial_ends_bit_for_bit_like_an_uninterrupted_one(
    tmp_path, settings, stop_after
):
    config = TrialConfig(**{**QUICK, **settings})
    whole = train_trial(config)
    restored, reported, state = _interrupted_then_restored(config, tmp_path, stop_after)
    assert _comparable(restored) == _comparable(whole)
    assert restored.selection_sha256 == whole.selection_sha256
    total = config.epochs + config.finetune_epochs
    # the restored run reports only the epochs after the checkpoint, each once
    assert len(reported) == total - state.epochs_done
    assert [(m.phase, m.epoch) for m in state.history + reported] == [
        (m.phase, m.epoch) for m in whole.epochs
    ]
    if settings.get("finetune_epochs"):
        assert state.phase == ("train" if stop_after <= config.epochs else "finetune")
        assert restored.finetune_test_accuracy == whole.finetune_test_accuracy is not None


def test_the_state_holds_momentum_schedule_and_random_generators(tmp_path):
    config = TrialConfig(**QUICK, method="slot", k=4, selection="probabilistic", lr=5.0)
    states = []
    train_trial(
        config, on_checkpoint=lambda s: states.append(s.save(tmp_path / "s")), checkpoint_every=2
    )
    assert len(states) == 1  # after epoch 2 of 4 (the last epoch needs none)
    state = TrainingState.load(tmp_path / "s")
    assert state.phase == "train" and state.epoch == 2 and len(state.history) == 2
    momenta = [s["momentum_buffer"] for s in state.optimizer["state"].values()]
    assert momenta and all(torch.count_nonzero(m) > 0 for m in momenta)
    assert state.schedule["last_epoch"] == 2
    assert state.rng["torch"].dtype == torch.uint8 and len(state.rng["samplers"]) == 3
    assert state.best[2] in (1, 2) and state.flops == state.history[-1].training_cost_flops


def test_checkpoints_fall_every_n_epochs_but_not_on_the_last():
    assert [e for e in range(1, 11) if is_due(e, 3, 10)] == [3, 6, 9]
    assert [e for e in range(1, 7) if is_due(e, 3, 6)] == [3]
    assert [e for e in range(1, 7) if is_due(e, 3, -1)] == [3, 6]  # a phase finetuning follows
    assert not any(is_due(e, 0, 10) for e in range(1, 11))


@pytest.mark.slow
def test_a_trial_restored_from_its_run_goes_on_in_that_run_logging_each_epoch_once(tmp_path):
    """The path a `--resume` takes, without Ray: the trial's MLflow run records where its
    checkpoint lies; the next attempt reopens that run, loads the state and finishes there."""
    from mlflow.tracking import MlflowClient

    from slotsweep.launch.trial import Checkpointing, run_trial
    from slotsweep.tracking.runs import StudyRun
    from slotsweep.tracking.store import TrackingTarget

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = StudyRun.start(uri, "resumed", "resumed", "", resume=False)
    target = TrackingTarget(uri, parent.experiment_id, parent.run_id, "resumed")
    config = TrialConfig(**{**QUICK, "method": "slot", "k": 4})
    saves = []

    def save(metrics, state):
        folder = tmp_path / f"checkpoint-{len(saves)}"
        state.save(folder)
        saves.append(folder)
        if len(saves) == 2:  # the launcher is killed right after this epoch's checkpoint
            raise KeyboardInterrupt
        return str(folder)

    checkpointing = Checkpointing(1, save, TrainingState.load)
    with pytest.raises(KeyboardInterrupt):
        run_trial(config, target, checkpointing=checkpointing)
    client = MlflowClient(uri)
    (stopped,) = parent.children()
    assert stopped.info.status == "KILLED"  # the second checkpoint was never recorded
    assert stopped.data.tags[tags.CHECKPOINT] == str(saves[0])
    outcome = run_trial(
        config,
        target,
        checkpointing=Checkpointing(
            1, lambda metrics, state: str(state.save(tmp_path / "later").parent), TrainingState.load
        ),
    )
    (run,) = parent.children()
    assert run.info.run_id == stopped.info.run_id == outcome.run_id
    assert run.info.status == "FINISHED" and "slotsweep.error" not in run.data.tags
    assert run.data.tags["slotsweep.resumed_from_epochs"] == "1"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert sorted(steps) == [1, 2, 3, 4]  # epoch 2 was logged before the kill: not again
    assert outcome.result.selection_sha256 == train_trial(config).selection_sha256
