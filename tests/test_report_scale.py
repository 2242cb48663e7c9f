"""A report over a search's many configurations: the learning curves of the best CURVE_LIMIT
only (said on the figure and the page), with only their runs' histories read from the store;
fANOVA's forest capped at many trials with the same ranking; fronts against brute force."""

from __future__ import annotations

import csv
import importlib
import math
import random

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from slotsweep.analysis import CURVE_LIMIT, compare, curve_note, curve_rows, dominates, front_of
from slotsweep.analysis.importance import MIN_TREES, TREES, fanova_trees, importance
from slotsweep.cli.results import print_comparison
from slotsweep.report import write_report
from slotsweep.report.tables import TERMINAL_ROWS, seeds_cell
from slotsweep.tracking.histories import metric_histories
from slotsweep.train.result import TrialRecord

CONFIGURATIONS, SEEDS = CURVE_LIMIT + 4, (0, 1)


def _accuracy(index: int, seed: int) -> float:
    """Configurations in a shuffled order of merit, so the best are not the first rows."""
    return 0.5 + 0.02 * ((index * 5) % CONFIGURATIONS) + 0.001 * seed


def _store(uri: str) -> list[TrialRecord]:
    """Trial runs of CONFIGURATIONS lr values x SEEDS with val_accuracy histories (one run's
    epoch 2 logged twice, as a resumed run does: the later value counts), as records."""
    client = MlflowClient(uri)
    exp = client.create_experiment("many")
    records = []
    for index in range(CONFIGURATIONS):
        for seed in SEEDS:
            run = client.create_run(exp).info.run_id
            acc = _accuracy(index, seed)
            history = [Metric("val_accuracy", acc - 0.1 / e, 10 * e, e) for e in (1, 2)]
            if index == 0 and seed == 0:
                history.append(Metric("val_accuracy", 0.0, 1, 2))  # logged earlier: replaced
            client.log_batch(run, metrics=history)
            params = {"method": "slot", "k": "8", "lr": f"0.{index + 1:02d}", "seed": str(seed)}
            metrics = {"best_val_accuracy": acc, "test_accuracy": acc}
            records.append(TrialRecord(run, "FINISHED", params, metrics, None))
    return records


def test_curves_of_a_search_draw_its_best_configurations_and_read_only_their_histories(tmp_path):
    records = _store(uri := f"sqlite:///{tmp_path / 'mlflow.db'}")
    rows = compare(records)
    by_mean = sorted(rows, key=lambda r: r.mean("best_val_accuracy"), reverse=True)
    best = by_mean[:CURVE_LIMIT]
    assert curve_rows(rows) == [r for r in rows if r in best]  # the best, in the rows' order
    worst_first = curve_rows(rows, ("best_val_accuracy", "min"))
    assert worst_first == [r for r in rows if r in by_mean[-CURVE_LIMIT:]]
    note = f"the best {CURVE_LIMIT} of {CONFIGURATIONS} configurations by best_val_accuracy (max)"
    assert curve_note(rows) == note
    assert curve_note(rows[:CURVE_LIMIT]) == ""  # all drawn: nothing to say

    histories = metric_histories(uri, [r.run_id for r in records])
    write_report(rows, tmp_path / "rep", histories=histories)
    assert histories.queries == CURVE_LIMIT * len(SEEDS)  # not one per run of the store
    with open(tmp_path / "rep" / "learning_curves.csv") as handle:
        lines = list(csv.DictReader(handle))
    drawn = {line["configuration"]: line for line in lines if line["epoch"] == "2"}
    assert sorted(drawn) == sorted(f"slot lr={r.settings['lr']}" for r in best)
    for row in best:
        line = drawn[f"slot lr={row.settings['lr']}"]
        index = int(row.settings["lr"][2:]) - 1
        expected = 100 * sum(_accuracy(index, s) - 0.05 for s in SEEDS) / len(SEEDS)
        assert float(line["mean"]) == pytest.approx(expected)  # the re-logged step: its latest
        assert line["seeds"] == str(len(SEEDS))
    page = (tmp_path / "rep" / "report.html").read_text()
    assert f"Drawn: {note}" in page and "<figcaption>validation accuracy" in page


def test_run_histories_read_a_run_when_first_looked_up(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("lazy")
    logged, bare = client.create_run(exp).info.run_id, client.create_run(exp).info.run_id
    client.log_batch(
        logged, metrics=[Metric("val_accuracy", v, 0, s) for s, v in [(2, 0.7), (1, 0.6)]]
    )
    histories = metric_histories(uri, [logged, bare])
    assert histories.queries == 0
    assert histories[logged] == [(1, 0.6), (2, 0.7)] and histories.queries == 1
    assert histories.get(logged) == [(1, 0.6), (2, 0.7)] and histories.queries == 1  # kept
    assert histories.get(bare, []) == [] and "other" not in histories
    assert list(histories) == [logged] and len(histories) == 1


def test_front_of_agrees_with_pairwise_dominance_with_ties():
    rng = random.Random(3)
    for count, dims in [(0, 2), (1, 2), (60, 2), (80, 3), (40, 4)]:
        points = [tuple(float(rng.randint(0, 5)) for _ in range(dims)) for _ in range(count)]
        brute = [not any(dominates(other, p) for other in points) for p in points]
        assert front_of(points) == brute


def test_fanova_keeps_optunas_trees_for_a_small_study_and_caps_a_large_one():
    assert fanova_trees(24) == TREES == 64  # a fixed grid's report: unchanged
    assert fanova_trees(250) == TREES
    assert TREES > fanova_trees(500) > MIN_TREES
    assert fanova_trees(1000) == fanova_trees(100_000) == MIN_TREES


@pytest.mark.slow
def test_capped_fanova_ranks_a_thousand_trials_as_optunas_default_does(monkeypatch):
    """1,000 trials where k matters most, lr next, a third setting nothing: the capped forest
    (MIN_TREES trees) and Optuna's 64 give the same order and importances within 0.03."""
    # the module (the package's `importance` is the function of the same name)
    module = importlib.import_module("slotsweep.analysis.importance")
    rng = random.Random(0)
    records = []
    for i in range(1000):
        k, lr, other = rng.choice([1, 2, 4, 8, 16]), 10 ** rng.uniform(-2, 0), rng.random()
        value = 0.04 * k.bit_length() - 0.05 * abs(math.log10(lr) + 1) + rng.gauss(0, 0.02)
        params = {"k": str(k), "lr": str(lr), "score_lambda": str(other), "seed": "0"}
        records.append(TrialRecord(f"r{i}", "FINISHED", params, {"best_val_accuracy": value}, None))
    rows = compare(records)
    capped = importance(rows, evaluators=("fanova",))
    monkeypatch.setattr(module, "TREE_BUDGET", TREES * len(records))  # Optuna's default forest
    uncapped = importance(rows, evaluators=("fanova",))
    assert (
        [i.setting for i in capped] == [i.setting for i in uncapped] == ["k", "lr", "score_lambda"]
    )
    assert [i.importance for i in capped] == pytest.approx(
        [i.importance for i in uncapped], abs=0.03
    )


def test_a_run_stopped_with_its_launch_counts_as_stopped_not_failed(tmp_path):
    """A SIGKILLed launch leaves its running trials KILLED (or RUNNING): the tables, the CSV
    and the page count them apart from trials that failed."""
    statuses = ["FINISHED", "FINISHED", "FAILED", "KILLED", "RUNNING"]
    records = [
        TrialRecord(f"r{i}", status, {"method": "slot", "k": "8", "seed": str(i)}, {}, None)
        for i, status in enumerate(statuses)
    ]
    (row,) = compare(records)
    assert (row.finished, row.failed, row.stopped) == (2, 1, 2)
    assert seeds_cell(row) == "2 (+1 failed, +2 stopped)"
    write_report([row], tmp_path)
    with open(tmp_path / "comparison.csv") as handle:
        (line,) = csv.DictReader(handle)
    assert (line["finished"], line["failed"], line["stopped"]) == ("2", "1", "2")
    page = (tmp_path / "report.html").read_text()
    assert "5 trial runs (2 finished, 1 failed, 2 stopped before they finished)" in page


def test_the_closing_table_of_a_search_shows_its_best_configurations_and_says_so(capsys, tmp_path):
    records = [
        TrialRecord(
            f"r{i}",
            "FINISHED",
            {"method": "slot", "k": str(2 ** (i % 2)), "lr": f"0.{i + 10}", "seed": "0"},
            {"best_val_accuracy": ((i * 7) % 50) / 50, "test_accuracy": 0.5},
            None,
        )
        for i in range(TERMINAL_ROWS + 10)
    ]
    print_comparison(compare(records), "search")
    out = " ".join(capsys.readouterr().out.split())
    total = TERMINAL_ROWS + 10
    assert f"shown: the best {TERMINAL_ROWS} of {total} configurations by best_val_accuracy" in out
    ranked = sorted(records, key=lambda r: r.metrics["best_val_accuracy"], reverse=True)
    shown = {r.params["lr"] for r in ranked[:TERMINAL_ROWS]}
    assert all(f" {lr} " in out for lr in shown)
    assert not any(f" {r.params['lr']} " in out for r in ranked[TERMINAL_ROWS:])
    assert " k " in out  # the study's varied settings, though the best might share one
    write_report(compare(records), tmp_path)
    text = " ".join((tmp_path / "comparison.txt").read_text().split())
    assert f"shown: the best {TERMINAL_ROWS} of {total}" in text  # the same table
    with open(tmp_path / "comparison.csv") as handle:
        assert len(list(csv.DictReader(handle))) == total  # every one
