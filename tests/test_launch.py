"""`slotsweep launch` end to end: real Ray, a real MLflow store in a temporary folder."""

import csv
import json
import signal
import sqlite3
import statistics
import textwrap
import urllib.request

import pytest
from helpers import popen_cli, run_cli, ui_server, wait_until
from mlflow.tracking import MlflowClient
from writers import write_unreadable_idx_folder

from slotsweep.launch.adapter import objective as _objective
from slotsweep.registry import metric_names
from slotsweep.study.file import load_study

pytestmark = pytest.mark.slow
CONTRACT_PARAMS = {
    "method",
    "arch",
    "dataset",
    "lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "epochs",
    "seed",
}
SLOT_PARAMS = {"k", "selection", "sharing", "score_lambda"}


def _write_study(folder, body):
    path = folder / "study.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def _launch(study, *args, cpus=2):
    """`slotsweep launch STUDY ARGS` beside the study file; it must succeed."""
    done = run_cli("launch", str(study), "--num-cpus", str(cpus), *args, cwd=study.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _quick_study(folder, name, body, concurrent=2, **trial):
    """A study of quick slot trials on synthetic data (epochs 1, 256 examples, `concurrent` at a
    time)."""
    settings = ", ".join(f"{key}: {value}" for key, value in {"epochs": 1, **trial}.items())
    header = (
        f"name: {name}\ntrial: {{arch: lenet_300_100, dataset: synthetic, method: slot, "
        f"train_subset: 256, {settings}}}\nmax_concurrent: {concurrent}\n"
    )
    return _write_study(folder, header + textwrap.dedent(body))


def _runs(folder, experiment):
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("slotsweep.role") == "study"]
    children = [r for r in runs if r.data.tags.get("slotsweep.role") == "trial"]
    return client, parents, children


def _finished_trial_rows(db):
    """FINISHED trial runs, read-only: an MlflowClient would race the launcher's schema set-up."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            return connection.execute(
                "select count(*) from runs join tags on runs.run_uuid = tags.run_uuid "
                "where runs.status = 'FINISHED' and tags.key = 'slotsweep.role' "
                "and tags.value = 'trial'"
            ).fetchone()[0]
    except sqlite3.Error:
        return 0


GRID_STUDY = """
    name: e2e
    trial: {arch: lenet_300_100, dataset: synthetic, method: slot, epochs: 2,
            train_subset: 384, batch_size: 64}
    space: {k: {grid: [2, 4]}}
    seeds: [0, 1]
    baselines:
      - {method: dense, lr: 0.01}
    resources: {cpu: 1}
    max_concurrent: 2
"""


def test_grid_study_nests_one_child_per_trial_and_resumes_without_duplicates(tmp_path):
    study = _write_study(tmp_path, GRID_STUDY)
    done = _launch(study)
    client, parents, children = _runs(tmp_path, "e2e")
    assert len(parents) == 1 and len(children) == 6
    parent_id = parents[0].info.run_id
    for run in parents + children:
        assert run.info.status == "FINISHED"
    for child in children:
        tags, params, metrics = child.data.tags, child.data.params, child.data.metrics
        assert tags["mlflow.parentRunId"] == parent_id and tags["slotsweep.trial_id"]
        assert CONTRACT_PARAMS | SLOT_PARAMS <= set(params)  # every method, the same keys
        if params["method"] != "slot":
            assert params["k"] == "0" and params["selection"] == "n/a"
        assert set(metric_names(compared=True)) <= set(metrics)
        for name in metric_names("epoch", optional=False):
            assert [m.step for m in client.get_metric_history(child.info.run_id, name)] == [1, 2]
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert "trial_config.json" in artifacts
    assert "test acc" in done.stdout and "dense" in done.stdout
    report = run_cli("report", str(study), "--out", "rep", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader((tmp_path / "rep" / "comparison.csv").open()))
    # a dense run's params show k = 0 (aligned params: see README, "What lands in MLflow")
    assert sorted((r["method"], r.get("k", "")) for r in rows) == [
        ("dense", "0"),
        ("slot", "2"),
        ("slot", "4"),
    ]
    assert all(r["finished"] == "2" and float(r["test_accuracy_mean"]) > 0 for r in rows)
    assert (tmp_path / "rep" / "accuracy_vs_k.png").stat().st_size > 0
    logged = {a.path for a in client.list_artifacts(parent_id)}
    assert {"comparison.csv", "accuracy_vs_k.png"} <= logged
    with ui_server(study, tmp_path) as url:
        request = urllib.request.Request(
            f"{url}/api/2.0/mlflow/runs/search",
            method="POST",
            data=json.dumps({"experiment_ids": [parents[0].info.experiment_id]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        served = json.load(urllib.request.urlopen(request, timeout=30))["runs"]
    nested = [
        r for r in served if {"key": "mlflow.parentRunId", "value": parent_id} in r["data"]["tags"]
    ]
    assert len(served) == 7 and len(nested) == 6
    _launch(study, "--resume")
    _, parents_after, children_after = _runs(tmp_path, "e2e")
    assert len(parents_after) == 1 and len(children_after) == 6
    assert {c.info.run_id for c in children_after} == {c.info.run_id for c in children}


def test_failing_trials_are_recorded_and_the_others_finish(tmp_path):
    # data that pre-flight finds (the four files are there) but a trial cannot read
    corrupt = write_unreadable_idx_folder(tmp_path / "corrupt")
    study = _quick_study(
        tmp_path,
        "failing",
        f"""
        seeds: [0]
        baselines:
          - {{method: dense, lr: 1.0e+30}}
          - {{dataset: mnist, data_root: {corrupt}}}
    """,
        k=4,
    )
    done = _launch(study)
    client, parents, children = _runs(tmp_path, "failing")
    status = {(c.data.params["method"], c.data.params["dataset"]): c for c in children}
    assert status[("slot", "synthetic")].info.status == "FINISHED"
    nan_run, missing_run = status[("dense", "synthetic")], status[("slot", "mnist")]
    assert nan_run.info.status == "FAILED" and "nan" in nan_run.data.tags["slotsweep.error"]
    assert missing_run.info.status == "FAILED"
    assert "DataFormatError" in missing_run.data.tags["slotsweep.error"]
    assert "error.txt" in {a.path for a in client.list_artifacts(missing_run.info.run_id)}
    assert parents[0].info.status == "FINISHED"
    assert "2 failed" in done.stdout


def _asha_epochs(costs: list[float], max_t: int, rungs: list[int]) -> list[int]:
    """The epochs ASHA (one bracket, reduction factor 2, mode min) lets each trial run, the
    trials started one at a time in this order: at each rung, a trial whose cost is above the
    median of those recorded there before it is stopped. `costs`: the trials' cost per epoch, or
    any increasing affine function of it (a median follows such a map)."""
    recorded: dict[int, list[float]] = {rung: [] for rung in rungs}
    epochs = []
    for cost in costs:
        ran = max_t
        for rung in sorted(rungs):
            before = list(recorded[rung])
            recorded[rung].append(cost)
            if before and cost > statistics.median(before):
                ran = rung
                break
        epochs.append(ran)
    return epochs


def test_optuna_search_with_asha(tmp_path):
    """ASHA stops trials early, deterministically: Optuna's seeded sampler proposes the same K
    in the same order each time, one trial runs at a time, and the followed metric is one that K
    alone sets (training cost, cumulative FLOPs: a slot layer adds 2K-1 per connection and
    step). So which trial ASHA stops, and at which rung, follows from the order of K alone: with
    seed 6 it is 2, 8, 2, and the K=8 trial is stopped after its first epoch."""
    study = _quick_study(
        tmp_path,
        "searched",
        """
        space:
          k: {choice: [2, 8]}
          lr: {loguniform: [0.01, 1.0]}
        seeds: [7]
        search: {algorithm: optuna, sampler: tpe, num_samples: 3, metric: training_cost_flops,
                 mode: min, seed: 6}
        scheduler: {name: asha, grace_period: 1, reduction_factor: 2}
    """,
        concurrent=1,
        epochs=3,
    )
    _launch(study)
    client, parents, children = _runs(tmp_path, "searched")
    assert len(children) == 3
    children.sort(key=lambda c: c.info.start_time)  # one at a time: the order ASHA saw them in
    ks = [int(c.data.params["k"]) for c in children]
    logged = [
        [m.step for m in client.get_metric_history(c.info.run_id, "train_loss")] for c in children
    ]
    # rungs at 1 and 2 epochs (grace_period 1, max_t 3); the cost per epoch is affine in K
    expected = _asha_epochs(ks, max_t=3, rungs=[1, 2])
    assert 1 in expected, f"K in the order sampled, {ks}: no trial trails at its first rung"
    assert logged == [list(range(1, n + 1)) for n in expected], ks
    for child, epochs in zip(children, expected, strict=True):
        assert child.info.status == ("FINISHED" if epochs == 3 else "KILLED")
    assert {c.data.params["seed"] for c in children} == {"7"}
    lrs = {float(c.data.params["lr"]) for c in children}
    assert len(lrs) == 3 and all(0.01 <= lr <= 1.0 for lr in lrs)


def test_a_grid_with_asha_stops_the_costlier_trials(tmp_path):
    """ASHA on fixed trials (a grid): they run in grid order, one at a time, so the trials of
    K=8, costlier per epoch than those of K=2 before them, are stopped at the first rung."""
    study = _quick_study(
        tmp_path,
        "gridasha",
        """
        space:
          k: {grid: [2, 8]}
        seeds: [0, 1]
        search: {algorithm: grid, metric: training_cost_flops, mode: min}
        scheduler: {name: asha, grace_period: 1, reduction_factor: 2}
    """,
        concurrent=1,
        epochs=3,
    )
    _launch(study)
    client, _, children = _runs(tmp_path, "gridasha")
    children.sort(key=lambda c: c.info.start_time)
    ks = [int(c.data.params["k"]) for c in children]
    assert ks == [2, 2, 8, 8]
    expected = _asha_epochs(ks, max_t=3, rungs=[1, 2])
    assert expected == [3, 3, 1, 1]
    logged = [
        [m.step for m in client.get_metric_history(c.info.run_id, "train_loss")] for c in children
    ]
    assert logged == [list(range(1, n + 1)) for n in expected]
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED", "KILLED", "KILLED"]


def test_optuna_nsga2_follows_two_objectives(tmp_path):
    study = _quick_study(
        tmp_path,
        "pareto",
        """
        space:
          k: {choice: [1, 2, 8, 32]}
        search: {algorithm: optuna, sampler: nsga2, num_samples: 3,
                 metric: [best_val_accuracy, training_cost_flops], mode: [max, min]}
    """,
    )
    objectives = (["best_val_accuracy", "training_cost_flops"], ["max", "min"])
    assert _objective(load_study(study)) == objectives  # what OptunaSearch is given
    _launch(study)
    _, _, children = _runs(tmp_path, "pareto")
    assert len(children) == 3 and all(c.info.status == "FINISHED" for c in children)
    assert all(
        {"best_val_accuracy", "training_cost_flops"} <= set(c.data.metrics) for c in children
    )


def test_interrupted_study_resumes_without_logging_a_trial_twice(tmp_path):
    study = _write_study(
        tmp_path,
        """
        name: interrupted
        trial: {arch: lenet_300_100, dataset: synthetic, method: slot, epochs: 3}
        space: {k: {grid: [2, 4, 8, 16]}}
        seeds: [0]
        max_concurrent: 1
    """,
    )
    launch = popen_cli("launch", str(study), "--num-cpus", "1", cwd=tmp_path)
    try:
        # one trial at a time, each a few seconds: the three after the first outlast the poll
        wait_until(
            lambda: _finished_trial_rows(tmp_path / "mlflow.db"),
            timeout=300,
            what="a finished trial (then Ctrl-C)",
            process=launch,
            every=0.2,
        )
        launch.send_signal(signal.SIGINT)
        launch.wait(timeout=120)
    finally:
        if launch.poll() is None:
            launch.kill()
    _, parents, children = _runs(tmp_path, "interrupted")
    assert len(parents) == 1 and parents[0].info.status == "KILLED"
    assert 1 <= sum(c.info.status == "FINISHED" for c in children) < 4
    assert all(c.info.status != "RUNNING" for c in children)
    _launch(study, "--resume", cpus=1)
    _, parents, children = _runs(tmp_path, "interrupted")
    keys = [c.data.tags["slotsweep.trial_key"] for c in children]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(keys) == len(set(keys)) == 4
    assert all(c.info.status == "FINISHED" for c in children)


def test_random_search_runs_every_sample_once_per_seed(tmp_path):
    study = _quick_study(
        tmp_path,
        "sampled",
        """
        space:
          lr: {uniform: [0.05, 0.5]}
        seeds: [0, 1]
        search: {algorithm: random, num_samples: 2}
    """,
        k=4,
    )
    _launch(study)
    _, _, children = _runs(tmp_path, "sampled")
    pairs = sorted((float(c.data.params["lr"]), c.data.params["seed"]) for c in children)
    assert len(pairs) == 4 and all(0.05 <= lr <= 0.5 for lr, _ in pairs)
    seeds_per_lr = {}
    for lr, seed in pairs:
        seeds_per_lr.setdefault(lr, set()).add(seed)
    assert list(seeds_per_lr.values()) == [{"0", "1"}, {"0", "1"}]


def test_resumed_optuna_search_continues_from_its_finished_trials(tmp_path):
    study = _quick_study(
        tmp_path,
        "continued",
        """
        space:
          lr: {loguniform: [0.01, 1.0]}
        search: {algorithm: optuna, sampler: tpe, num_samples: 2, seed: 1}
    """,
    )
    _launch(study)
    _, _, before = _runs(tmp_path, "continued")
    _launch(study, "--resume", "--set", "search.num_samples=4")
    _, parents, after = _runs(tmp_path, "continued")
    assert len(parents) == 1 and len(before) == 2 and len(after) == 4
    assert {r.info.run_id for r in before} < {r.info.run_id for r in after}
    assert all(
        r.info.status == "FINISHED" and r.data.tags["slotsweep.phase"] == "search" for r in after
    )
    assert len({r.data.params["lr"] for r in after}) == 4
