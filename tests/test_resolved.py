"""A trial logs, trains with and is identified by its resolved config: every default explicit."""

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from slotsweep.config import TrialConfig, trial_key
from slotsweep.launch.trial import run_trial
from slotsweep.tracking.params import trial_params
from slotsweep.tracking.runs import StudyRun
from slotsweep.tracking.store import TrackingTarget

RESOLVED_KEYS = ("score_lambda", "score_lambda_conv", "lr", "dropout", "val_fraction")


@pytest.mark.parametrize(
    "settings,expected",
    [
        ({}, (0.1, 1.0, 0.2, 0.0, 0.15)),
        ({"arch": "conv2", "dataset": "cifar10", "k": 16}, (0.1, 1.0, 0.1, 0.5, 0.1)),
        ({"recipe": "authors", "selection": "probabilistic"}, (1.0, 1.0, 50.0, 0.0, 0.15)),
        (
            {"score_lambda": 0.3, "dropout": 0.2, "val_fraction": 0.3, "lr": 0.05},
            (0.3, 0.3, 0.05, 0.2, 0.3),
        ),
        ({"score_lambda": 0.3, "score_lambda_conv": 2.0}, (0.3, 2.0, 0.2, 0.0, 0.15)),
        ({"method": "dense"}, (0.1, 1.0, 0.01, 0.0, 0.15)),
        ({"method": "edge_popup"}, (0.1, 1.0, 0.1, 0.0, 0.15)),
    ],
)
def test_defaults_resolve_to_the_values_the_trial_uses(settings, expected):
    resolved = TrialConfig(**settings).resolved()
    assert tuple(getattr(resolved, key) for key in RESOLVED_KEYS) == expected
    assert resolved.resolved() == resolved  # resolving again changes nothing


def test_a_default_spelled_out_is_the_same_trial():
    implicit = TrialConfig(arch="conv2")
    explicit = TrialConfig(
        arch="conv2",
        score_lambda=0.1,
        score_lambda_conv=1.0,
        lr=0.2,
        dropout=0.5,
        val_fraction=0.15,
    )
    assert trial_key(implicit.resolved()) == trial_key(explicit.resolved())
    assert trial_key(implicit.resolved()) != trial_key(
        TrialConfig(arch="conv2", dropout=0.4).resolved()
    )
    with pytest.raises(TypeError, match="resolved"):  # an unresolved config has no identity yet
        trial_key(implicit)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"arch": "conv4", "sharing": "global", "k": 3},
        {"train_subset": 50, "device": "cpu", "fail_on_nan": False},
    ],
)
def test_params_parse_back_to_the_typed_config(settings):
    config = TrialConfig(**settings)
    params = trial_params(config.resolved())
    assert all(isinstance(value, str) for value in params.values())
    assert TrialConfig.from_params(params) == config.resolved()


def test_a_trial_logs_its_resolved_config(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = StudyRun.start(uri, "resolved", "resolved", "", resume=False)
    target = TrackingTarget(uri, parent.experiment_id, parent.run_id, "resolved")
    config = TrialConfig(dataset="synthetic", epochs=1, train_subset=200, batch_size=50)
    outcome = run_trial(config, target)
    client = MlflowClient(uri)
    run = client.get_run(outcome.run_id)
    path = client.download_artifacts(outcome.run_id, "trial_config.json", str(tmp_path))
    logged = json.loads(Path(path).read_text())
    assert logged == config.resolved().model_dump()
    assert {key: run.data.params[key] for key in RESOLVED_KEYS} == {
        "score_lambda": "0.1",
        "score_lambda_conv": "1.0",
        "lr": "0.2",
        "dropout": "0.0",
        "val_fraction": "0.15",
    }
    assert run.data.tags["slotsweep.trial_key"] == trial_key(config.resolved())
    assert outcome.result.params == config.resolved().model_dump()
