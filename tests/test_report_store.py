"""`slotsweep report` on an MLflow store logged for the test (no training): the intervals, the
paired findings, the fronts and the learning curves it writes, checked against their own
computation from the store's records (scipy's t-interval, per-seed differences, brute force)."""

from __future__ import annotations

import csv
import itertools
import json
import statistics

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from scipy import stats

from slotsweep.config import TrialConfig
from slotsweep.tracking.params import trial_params
from tests.helpers import run_cli

EXPERIMENT = "store-report"
SEEDS = (0, 1, 2)


def _accuracy(method: str, k: int, selection: str, seed: int) -> float:
    """Seed effects larger than the GS - PS gap, which is +0.6 points at every seed."""
    base = {"dense": 0.88}.get(method, 0.80 + 0.01 * k / 8)
    return base + 0.006 * (selection == "greedy") + 0.01 * seed - 0.0005 * seed**2


def _log_store(uri: str, document: dict | None = None) -> None:
    client = MlflowClient(uri)
    exp = client.create_experiment(EXPERIMENT)
    parent = client.create_run(exp, tags={"slotsweep.role": "study"}).info.run_id
    if document:  # the study a launch logs: what `report --experiment` reads the search from
        client.log_dict(parent, document, "study.json")
    configs = [
        dict(method="slot", k=k, selection=selection)
        for k, selection in itertools.product([2, 8], ["greedy", "probabilistic"])
    ] + [dict(method="dense", lr=0.01)]
    for settings, seed in itertools.product(configs, SEEDS):
        config = TrialConfig(arch="lenet_300_100", dataset="mnist", epochs=3, seed=seed, **settings)
        run = client.create_run(
            exp, tags={"slotsweep.role": "trial", "mlflow.parentRunId": parent}
        ).info.run_id
        params = trial_params(config.resolved())
        acc = _accuracy(config.method, config.k, config.selection, seed)
        k = config.k or 64
        final = {
            "test_accuracy": acc,
            "best_val_accuracy": acc + 0.001,
            "model_size_bytes": 1000.0 * k,
            "training_memory_bytes": 5e6 + 1e4 * seed,
            "training_cost_flops": 1e9 * k,
        }
        history = [Metric("val_accuracy", acc - 0.1 / e, 0, e) for e in (1, 2, 3)]
        client.log_batch(
            run,
            params=[Param(key, value) for key, value in params.items()],
            metrics=[Metric(key, value, 0, 0) for key, value in final.items()] + history,
            tags=[RunTag("mlflow.runName", f"t{seed}")],
        )
        client.set_terminated(run)
    client.set_terminated(parent)


def _records(uri: str) -> list[tuple[tuple, int, dict[str, float], str]]:
    """(configuration, seed, metrics, run id) of every trial, read back from the store."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], "tags.`slotsweep.role` = 'trial'")
    return [
        (
            (r.data.params["method"], r.data.params["k"], r.data.params["selection"]),
            int(r.data.params["seed"]),
            r.data.metrics,
            r.info.run_id,
        )
        for r in runs
    ]


@pytest.mark.slow
def test_report_intervals_findings_fronts_and_curves_match_the_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _log_store(uri)
    done = run_cli(
        "report", "--experiment", EXPERIMENT, "--tracking-uri", uri, "--out", "rep", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # the closing tables' rows fit a 100-column terminal (CLI_ENV's console is wider)
    rows = [line for line in done.stdout.splitlines() if line.startswith((" slot", " dense"))]
    assert len(rows) == 10 and max(len(line) for line in rows) <= 100
    records, out = _records(uri), tmp_path / "rep"
    groups: dict[tuple, dict[int, dict]] = {}
    for config, seed, metrics, _ in records:
        groups.setdefault(config, {})[seed] = metrics
    # intervals: scipy's t-interval of each configuration's test accuracy over its seeds
    for row in csv.DictReader((out / "comparison.csv").open()):
        values = [
            m["test_accuracy"] for m in groups[(row["method"], row["k"], row["selection"])].values()
        ]
        low, high = stats.t.interval(
            0.95, len(values) - 1, loc=statistics.fmean(values), scale=stats.sem(values)
        )
        assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx((low, high))
    # paired finding: GS - PS per seed at K=2 and 8 (+0.6 points each), held
    page = (out / "report.html").read_text()
    tests = {r["comparison"]: r for r in csv.DictReader((out / "findings.csv").open())}
    for k in ("2", "8"):
        gs, ps = groups[("slot", k, "greedy")], groups[("slot", k, "probabilistic")]
        diffs = [100 * (gs[s]["test_accuracy"] - ps[s]["test_accuracy"]) for s in SEEDS]
        assert f"K={k} {statistics.fmean(diffs):+.2f} [" in page
        row = tests[f"K={k} GS - PS"]
        assert float(row["mean"]) == pytest.approx(statistics.fmean(diffs))
        assert row["seeds"] == "3" and row["comparison_verdict"] == "held"
    assert "held</span>: greedy selection" in page
    # the plateau: GS K=8 - dense per seed, about -7 points: did not hold
    gs8, dense = groups[("slot", "8", "greedy")], groups[("dense", "0", "n/a")]
    diffs = [100 * (gs8[s]["test_accuracy"] - dense[s]["test_accuracy"]) for s in SEEDS]
    low, high = stats.t.interval(0.95, 2, loc=statistics.fmean(diffs), scale=stats.sem(diffs))
    plateau = tests["GS K=8 - dense"]
    assert (float(plateau["ci_low"]), float(plateau["ci_high"])) == pytest.approx((low, high))
    assert plateau["verdict"] == "did not hold"
    # fronts: brute force over the configurations' means
    means = {
        c: {m: statistics.fmean(v[s][m] for s in v) for m in next(iter(v.values()))}
        for c, v in groups.items()
    }
    for row in csv.DictReader((out / "pareto.csv").open()):
        mine = means[(row["method"], row["k"], row["selection"])]
        for cost in ("model_size_bytes", "training_memory_bytes", "training_cost_flops"):
            beaten = any(
                o["test_accuracy"] >= mine["test_accuracy"]
                and o[cost] <= mine[cost]
                and (o["test_accuracy"] > mine["test_accuracy"] or o[cost] < mine[cost])
                for o in means.values()
            )
            assert row[f"front_{cost}"] == str(not beaten), (row, cost)
    # learning curves: the mean over seeds of val_accuracy at each epoch, in %
    curve = {
        (r["configuration"], r["epoch"]): r
        for r in csv.DictReader((out / "learning_curves.csv").open())
    }
    dense = groups[("dense", "0", "n/a")]
    assert float(curve[("dense", "2")]["mean"]) == pytest.approx(
        100 * statistics.fmean(m["test_accuracy"] - 0.05 for m in dense.values())
    )
    importance = list(csv.DictReader((out / "importance.csv").open()))
    assert {r["evaluator"] for r in importance} == {"fanova", "ped_anova"}
    # the parent run's summary carries the best configuration's interval
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    (parent,) = client.search_runs([exp.experiment_id], "tags.`slotsweep.role` = 'study'")
    assert (
        parent.data.metrics["best.test_accuracy_ci_low"] < parent.data.metrics["best.test_accuracy"]
    )
    logged = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto.csv", "importance.csv", "learning_curves.png", "report.html"} <= logged


@pytest.mark.slow
def test_a_multi_objective_search_reports_its_front_first_and_in_the_summary(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    search = {"metric": ["best_val_accuracy", "model_size_bytes"], "mode": ["max", "min"]}
    _log_store(uri, {"name": EXPERIMENT, "search": {"algorithm": "optuna", **search}})
    done = run_cli(
        "report", "--experiment", EXPERIMENT, "--tracking-uri", uri, "--out", "rep", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.index("its Pareto front") < done.stdout.index("trial runs")  # first
    means: dict[tuple, list] = {}
    for config, _, metrics, _ in _records(uri):
        means.setdefault(config, []).append(metrics)
    points = {
        c: (
            statistics.fmean(m["best_val_accuracy"] for m in ms),
            -statistics.fmean(m["model_size_bytes"] for m in ms),
        )
        for c, ms in means.items()
    }
    expected = {
        c
        for c, p in points.items()
        if not any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points.values())
    }
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    (parent,) = client.search_runs([exp.experiment_id], "tags.`slotsweep.role` = 'study'")
    described = json.loads(parent.data.tags["best.front"])
    assert {(d["method"], d["k"], d["selection"]) for d in described} == expected
    assert parent.data.metrics["best.front_size"] == len(expected)
