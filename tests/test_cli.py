"""The command line end to end, run as a user would in a temporary folder (no Ray here). The
tests whose command trains are `slow`; the others are refused or print a plan."""

import json

import pytest
from helpers import run_cli
from mlflow.tracking import MlflowClient

from slotsweep.registry import metric_names

CONTRACT_KEYS = {
    "test_accuracy",
    "best_val_accuracy",
    "training_cost_flops",
    "memory_state_bytes",
    "peak_memory_bytes",
    "model_size_bytes",
    "train_time_s",
    "params",
    "epochs",
    "selection_sha256",
}


@pytest.mark.slow
def test_train_on_real_fashion_mnist_logs_one_mlflow_run(tmp_path, fashion_mnist):
    args = [
        "train",
        "--dataset",
        "fashion_mnist",
        "--k",
        "8",
        "--epochs",
        "2",
        "--train-subset",
        "3000",
        "--json",
        "result.json",
        "--experiment",
        "cli",
    ]
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert CONTRACT_KEYS <= set(result)
    assert 0.5 < result["test_accuracy"] <= 1 and len(result["epochs"]) == 2
    assert result["params"]["k"] == 8 and len(result["selection_sha256"]) == 64
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cli").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert set(metric_names(compared=True)) <= set(runs[0].data.metrics)
    history = client.get_metric_history(runs[0].info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2]


@pytest.mark.slow
def test_train_is_deterministic(tmp_path):
    hashes = []
    for name in ("a.json", "b.json"):
        done = run_cli(
            "train",
            "--dataset",
            "synthetic",
            "--k",
            "4",
            "--epochs",
            "1",
            "--train-subset",
            "512",
            "--seed",
            "3",
            "--no-mlflow",
            "--json",
            name,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        hashes.append(json.loads((tmp_path / name).read_text())["selection_sha256"])
    assert hashes[0] == hashes[1]
    assert not (tmp_path / "mlflow.db").exists()


def test_train_refuses_bad_flags_by_name(tmp_path):
    done = run_cli("train", "--k", "0", "--sharing", "rows", "--no-mlflow", cwd=tmp_path)
    assert done.returncode == 2
    assert "--k" in done.stderr and "--sharing" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_train_missing_data_is_one_clear_error(tmp_path):
    done = run_cli(
        "train",
        "--dataset",
        "mnist",
        "--data-root",
        str(tmp_path / "none"),
        "--no-mlflow",
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2  # refused by pre-flight, before training starts
    assert str(tmp_path / "none") in done.stderr and "Traceback" not in done.stderr


def test_validate_and_dry_run_print_the_plan(tmp_path):
    done = run_cli("validate", "studies/k_scan.yaml", cwd=_repo())
    assert done.returncode == 0, done.stderr
    assert "24 trials" in done.stdout
    done = run_cli(
        "launch",
        "studies/k_scan.yaml",
        "--dry-run",
        "--set",
        "seeds=[0]",
        "--set",
        "space.k.grid=[1,8]",
        cwd=_repo(),
    )
    assert done.returncode == 0, done.stderr
    assert "k_scan: 3 trials" in done.stdout


def test_invalid_study_lists_every_problem_without_traceback(tmp_path):
    study = tmp_path / "bad.yaml"
    study.write_text(
        "name: bad study\ntrial: {epochs: 0, kk: 1}\nspace: {k: {grid: [0]}}\n"
        "search: {algorithm: grid}\nfoo: 1\n"
    )
    done = run_cli("validate", str(study), cwd=tmp_path)
    assert done.returncode == 2
    for path in ("name", "trial.epochs", "trial.kk", "foo"):
        assert path in done.stderr
    assert "Traceback" not in done.stderr
    done = run_cli("launch", str(study), cwd=tmp_path)
    assert done.returncode == 2 and not (tmp_path / "mlflow.db").exists()


def _repo():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


def test_launch_timing_spreads_trial_time_over_slots():
    from slotsweep.launch.launcher import LaunchSummary
    from slotsweep.launch.timing import launch_timing
    from slotsweep.train.result import TrialRecord

    records = [
        TrialRecord(
            str(i), "FINISHED", {}, {"train_time_s": 30.0, "data_time_fraction": 0.01 * i}, None
        )
        for i in range(4)
    ]
    records.append(TrialRecord("x", "FAILED", {}, {"train_time_s": 99.0}, "boom"))
    summary = LaunchSummary("sqlite:///x.db", "e", "p", trials=5, failed=1, wall_time_s=80.0)
    text = launch_timing(summary, records, slots=2)
    assert "own time 120.0 s, 60.0 s over 2 slots" in text
    assert "added 20.0 s (25% of the wall time)" in text
    assert "waiting for batches took 1.5% of epoch time (trial mean; at most 3.0%)" in text
    resumed = LaunchSummary(
        "sqlite:///x.db",
        "e",
        "p",
        trials=3,
        failed=1,
        wall_time_s=80.0,
        earlier_run_ids=frozenset({"0", "1"}),
    )  # finished before --resume
    assert "own time 60.0 s, 30.0 s over 2 slots" in launch_timing(resumed, records, slots=2)


def test_progress_bar_follows_a_lowered_total():
    from rich.console import Console

    from slotsweep.launch.progress import StudyProgress

    progress = StudyProgress(total=4, metric="best_val_accuracy", mode="max")
    progress.total -= 2  # a resumed Optuna search: two of its samples already finished
    progress.trial_started("a")
    progress.trial_finished("a")
    console = Console(width=200, record=True)
    console.print(progress)
    assert "1/2" in console.export_text()
