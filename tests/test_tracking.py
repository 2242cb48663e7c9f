"""MLflow tracking against a real SQLite store: URIs, run identity, nesting (no Ray)."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from slotsweep.config import TrialConfig
from slotsweep.study.store import absolute_tracking_uri
from slotsweep.tracking.params import trial_params
from slotsweep.tracking.runs import MlflowTrialRun as TrialRun
from slotsweep.tracking.runs import StudyRun, finished_trial_keys


def test_tracking_uris_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_tracking_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert absolute_tracking_uri("sqlite:///runs/x.db") == f"sqlite:///{tmp_path / 'runs/x.db'}"
    assert absolute_tracking_uri("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    assert absolute_tracking_uri("mlruns") == (tmp_path / "mlruns").as_uri()
    assert absolute_tracking_uri("http://mlflow:5000") == "http://mlflow:5000"


def test_trial_runs_keep_their_identity_under_a_parent(tmp_path):
    uri = absolute_tracking_uri(f"sqlite:///{tmp_path / 'store.db'}")
    parent = StudyRun.start(uri, "exp", "study", "", resume=False)
    config = TrialConfig(k=4).resolved()
    stale = TrialRun.open(
        uri,
        parent.experiment_id,
        config,
        trial_key="abc",
        trial_id="t1",
        parent_run_id=parent.run_id,
    )
    fresh = TrialRun.open(
        uri,
        parent.experiment_id,
        config,
        trial_key="abc",
        trial_id="t2",
        parent_run_id=parent.run_id,
    )
    assert fresh.run_id != stale.run_id and not fresh.finished
    client = MlflowClient(uri)
    assert client.get_run(stale.run_id).info.lifecycle_stage == "deleted"
    client.set_terminated(fresh.run_id, "FINISHED")
    again = TrialRun.open(
        uri,
        parent.experiment_id,
        config,
        trial_key="abc",
        trial_id="t3",
        parent_run_id=parent.run_id,
    )
    assert again.run_id == fresh.run_id and again.finished
    assert [r.info.run_id for r in parent.children()] == [fresh.run_id]
    assert finished_trial_keys(parent.children()) == {"abc"}
    parent.finish("FINISHED")
    resumed = StudyRun.start(uri, "exp", "study", "", resume=True)
    assert resumed.run_id == parent.run_id
    assert Path(tmp_path / "mlartifacts").is_dir()


def test_params_line_up_across_methods():
    slot = trial_params(TrialConfig(k=8).resolved())
    dense = trial_params(TrialConfig(method="dense").resolved())
    edge = trial_params(TrialConfig(method="edge_popup").resolved())
    assert set(slot) == set(dense) == set(edge)
    assert {"k", "log2_k", "selection", "sharing", "score_lambda"} <= set(slot)
    assert (slot["k"], slot["log2_k"]) == ("8", "3.0")
    assert trial_params(TrialConfig(k=1).resolved())["log2_k"] == "0.0"
    for baseline in (dense, edge):  # numeric axes stay numeric; words say "n/a"
        assert (baseline["k"], baseline["log2_k"]) == ("0", "-1.0")
        assert baseline["selection"] == baseline["sharing"] == baseline["score_lambda"] == "n/a"
    assert dense["lr"] == "0.01" and slot["lr"] == "0.2"
    # only the slot machine's own settings get placeholders (TrialConfig declares them); other
    # settings show their values, so MLflow's compare view varies only what a study varied
    assert (dense["recipe"], dense["impl"], dense["finetune_epochs"]) == ("paper", "auto", "0")
    assert slot["keep_fraction"] == dense["keep_fraction"] == edge["keep_fraction"] == "0.5"
    assert edge["selection"] == "n/a" and slot["recipe"] == "paper"


def test_experiments_are_marked_model_training(tmp_path):
    from slotsweep.tracking.store import experiment_id

    client = MlflowClient(f"sqlite:///{tmp_path / 'store.db'}")
    created = experiment_id(client, "fresh")
    plain = client.create_experiment("plain")  # made elsewhere, reused by a study
    assert experiment_id(client, "plain") == plain
    for exp in (created, plain):
        tags = client.get_experiment(exp).tags
        assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_stopped_trial_is_killed_and_a_raising_one_failed(tmp_path):
    from slotsweep.data import DataNotFoundError
    from slotsweep.launch.trial import run_trial
    from slotsweep.tracking.store import TrackingTarget

    uri = absolute_tracking_uri(f"sqlite:///{tmp_path / 'store.db'}")
    parent = StudyRun.start(uri, "exp", "study", "", resume=False)
    target = TrackingTarget(uri, parent.experiment_id, parent.run_id, "study")
    settings = {"dataset": "synthetic", "train_subset": 256, "epochs": 2}

    def stop(metrics):
        raise SystemExit(0)  # what Ray Tune's report raises when a scheduler stops the trial

    with pytest.raises(SystemExit):
        run_trial(TrialConfig(**settings, k=2), target, on_epoch=stop)
    missing = {**settings, "dataset": "mnist", "data_root": str(tmp_path / "none")}
    with pytest.raises(DataNotFoundError):
        run_trial(TrialConfig(**missing, k=4), target)
    status = {r.data.params["k"]: r for r in parent.children()}
    assert status["2"].info.status == "KILLED"
    assert status["4"].info.status == "FAILED"
    assert "DataNotFoundError" in status["4"].data.tags["slotsweep.error"]


def test_a_finished_trial_is_not_trained_again(tmp_path):
    from slotsweep.launch.trial import run_trial
    from slotsweep.tracking.store import TrackingTarget

    uri = absolute_tracking_uri(f"sqlite:///{tmp_path / 'store.db'}")
    parent = StudyRun.start(uri, "exp", "study", "", resume=False)
    target = TrackingTarget(uri, parent.experiment_id, parent.run_id, "study")
    config = TrialConfig(dataset="synthetic", train_subset=256, epochs=1, k=2)
    first = run_trial(config, target)
    finals = []
    again = run_trial(config, target, on_final=lambda last, metrics: finals.append((last, metrics)))
    assert again.result is None and again.run_id == first.run_id
    assert finals == [(None, again.metrics)]
    assert again.metrics["test_accuracy"] == first.metrics["test_accuracy"]


def test_concurrent_trials_log_the_same_data_set(tmp_path):
    """Trials of one experiment running at once log the same data set as an input; MLflow looks
    a dataset up, then inserts it, so without a retry one of them fails on the unique
    constraint once the other has inserted it (as two Ray trials did)."""
    import threading

    from slotsweep.tracking.params import dataset_input
    from slotsweep.tracking.runs import log_data_inputs

    uri = absolute_tracking_uri(f"sqlite:///{tmp_path / 'store.db'}")
    client = MlflowClient(uri)
    summary = {
        "name": "synthetic-train",
        "digest": "f" * 64,
        "split": "train",
        "examples": 10,
        "shape": [1, 28, 28],
        "num_classes": 10,
    }
    errors = []
    for round_ in range(4):
        experiment = client.create_experiment(f"e{round_}")
        runs = [client.create_run(experiment).info.run_id for _ in range(6)]
        start = threading.Barrier(len(runs))

        def log(run_id, start=start):
            own = MlflowClient(uri)  # one client a trial, as each Ray worker has
            start.wait()
            try:
                log_data_inputs(own, run_id, [dataset_input(summary)])
            except Exception as error:  # noqa: BLE001 - collected for the assertion
                errors.append(error)

        threads = [threading.Thread(target=log, args=(run_id,)) for run_id in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        for run_id in runs:
            inputs = client.get_run(run_id).inputs.dataset_inputs
            assert [i.dataset.name for i in inputs] == ["synthetic-train"]
