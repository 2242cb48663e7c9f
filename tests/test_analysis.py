"""The analysis library against independent computations: t-intervals against scipy and a
hand-worked example, paired differences from known per-seed values, verdicts at their edges,
a hand-made Pareto front, importance that finds the one setting deciding a synthetic objective,
learning curves from known histories."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from scipy import stats

from slotsweep.analysis import (
    against_reference,
    combine,
    compare,
    curves,
    decide,
    front,
    front_of,
    importance,
    paired,
    paired_rows,
    pareto,
    row_interval,
    search_front,
    t_interval,
)
from slotsweep.train.result import TrialRecord

T_2 = 4.302652729911275  # t(0.975, 2 degrees of freedom), from a printed table


def trial(seed, run=None, status="FINISHED", **values):
    """One trial record: settings and metrics split by name (`acc` is test_accuracy)."""
    settings = {k: str(v) for k, v in values.items() if not k.startswith("m_")}
    metrics = {k[2:]: v for k, v in values.items() if k.startswith("m_")}
    run = run or f"r{seed}-{sorted(settings.items())}"
    return TrialRecord(run, status, {**settings, "seed": str(seed)}, metrics, None)


def test_t_interval_hand_worked_and_against_scipy():
    # 1, 2, 3: mean 2, s = 1, half-width t(0.975, 2) x 1 / sqrt(3)
    interval = t_interval([1.0, 2.0, 3.0])
    assert (interval.mean, interval.n, interval.std) == (2.0, 3, 1.0)
    assert interval.low == pytest.approx(2 - T_2 / math.sqrt(3))
    assert interval.high == pytest.approx(2 + T_2 / math.sqrt(3))
    rng = random.Random(1)
    for n in (2, 3, 5, 10):
        values = [rng.gauss(0.9, 0.02) for _ in range(n)]
        low, high = stats.t.interval(
            0.95, n - 1, loc=statistics.fmean(values), scale=stats.sem(values)
        )
        assert (t_interval(values).low, t_interval(values).high) == pytest.approx((low, high))


def test_one_seed_has_no_interval_and_decides_nothing():
    one = t_interval([0.9])
    assert not one.defined and one.low is None and "one seed" in one.scaled(100).text()
    assert decide(one) == "inconclusive"
    assert against_reference(one, 90.0, 1.0) == "inconclusive"
    assert t_interval([]) is None


def test_paired_differences_from_known_per_seed_values():
    # seed effects larger than the difference: the unpaired intervals overlap, the paired
    # difference is +1 point at every seed
    a = {"0": 90.0, "1": 95.0, "2": 85.0}
    b = {"0": 89.0, "1": 94.0, "2": 84.0, "3": 50.0}  # seed 3 has no partner: left out
    result = paired(a, b)
    assert result.differences == pytest.approx({"0": 1.0, "1": 1.0, "2": 1.0})
    assert result.interval.mean == pytest.approx(1.0) and result.seeds == 3
    assert decide(result.interval) == "held"
    ia, ib = t_interval(a.values()), t_interval(list(b.values())[:3])
    assert ia.low < ib.high  # unpaired, they overlap: no conclusion
    # differences 0.02, 0.01, 0.03: mean 0.02, s 0.01, interval 0.02 +- t x 0.01 / sqrt(3)
    mixed = paired({"0": 0.92, "1": 0.91, "2": 0.93}, {"0": 0.90, "1": 0.90, "2": 0.90})
    assert mixed.interval.low == pytest.approx(0.02 - T_2 * 0.01 / math.sqrt(3))
    assert decide(mixed.interval) == "inconclusive"  # crosses 0
    assert decide(mixed.interval, -0.01) == "held"  # low -0.0048
    assert decide(mixed.interval, 0.04) == "inconclusive"  # high 0.0448
    assert decide(mixed.interval, 0.1) == "did not hold"
    assert decide(mixed.interval, 0.1, above=False) == "held"
    assert paired({"0": 1.0}, {"1": 1.0}).interval is None  # no shared seed


def test_paired_rows_use_the_seeds_of_grouped_records():
    records = [
        trial(s, method="slot", k=8, m_test_accuracy=0.9 + 0.01 * s + 0.005) for s in range(3)
    ]
    records += [trial(s, method="dense", k=0, m_test_accuracy=0.9 + 0.01 * s) for s in range(3)]
    records += [trial(3, method="dense", k=0, m_test_accuracy=0.1)]  # no slot partner
    slot, dense = compare(records)
    gap = paired_rows(slot, dense, scale=100)
    assert gap.differences == pytest.approx({"0": 0.5, "1": 0.5, "2": 0.5})
    assert row_interval(dense).n == 4  # the configuration's own interval keeps every trial


def test_verdict_combination_and_against_a_reference():
    assert combine(["held", "held"]) == "held"
    assert combine(["held", "inconclusive"]) == "inconclusive"
    assert combine(["held", "did not hold", "inconclusive"]) == "did not hold"
    tight = t_interval([97.4, 97.5, 97.6])  # 97.5 +- 0.25
    assert against_reference(tight, 98.0, 1.0) == "within"
    assert against_reference(tight, 98.0, 0.6) == "inconclusive"  # crosses 97.4
    assert against_reference(tight, 99.0, 1.0) == "below"
    assert against_reference(tight, 96.0, 1.0) == "above"


def test_pareto_front_of_a_hand_made_set():
    # (accuracy, cost): b dominates a; c and d tie (both on); e is the cheapest; f the best
    points = [(0.80, 10.0), (0.85, 10.0), (0.90, 20.0), (0.90, 20.0), (0.70, 1.0), (0.95, 99.0)]
    assert front(points) == [False, True, True, True, True, True]
    assert front([(0.9, 5.0), (0.8, 6.0), (0.9, 4.0)]) == [False, False, True]


def test_pareto_over_configurations_uses_means_over_seeds():
    records = []
    for k, accs in {2: [0.80, 0.82], 8: [0.90, 0.88], 64: [0.86, 0.88]}.items():
        for seed, acc in enumerate(accs):
            cost = {"model_size_bytes": 100.0 * k, "training_cost_flops": 5.0 - k / 64}
            records.append(
                trial(
                    seed,
                    method="slot",
                    k=k,
                    m_test_accuracy=acc,
                    **{f"m_{m}": v for m, v in cost.items()},
                )
            )
    table = {p.row.settings["k"]: p for p in pareto(compare(records))}
    assert table["8"].objectives["test_accuracy"] == pytest.approx(0.89)
    assert {k for k, p in table.items() if p.on_front["model_size_bytes"]} == {"2", "8"}
    assert {k for k, p in table.items() if p.on_front["training_cost_flops"]} == {"8", "64"}
    assert not any(p.on_front["training_memory_bytes"] for p in table.values())  # not logged


def test_importance_ranks_first_the_setting_that_alone_decides_the_objective():
    rng = random.Random(0)
    records = []
    for index in range(24):
        lam, lr, sel = (
            rng.choice([0.1, 0.5, 1.0, 2.0]),
            rng.choice([0.05, 0.1, 0.2]),
            rng.choice(["greedy", "probabilistic"]),
        )
        value = 0.5 + 0.2 * math.log(lam) + rng.gauss(0, 1e-4)  # lambda alone decides it
        records.append(
            trial(
                index,
                score_lambda=lam,
                lr=lr,
                selection=sel,
                method="slot",
                m_best_val_accuracy=value,
            )
        )
    found = importance(compare(records), "best_val_accuracy", "max")
    for evaluator in ("fanova", "ped_anova"):
        ranked = [i for i in found if i.evaluator == evaluator]
        assert ranked[0].setting == "score_lambda", ranked
        assert ranked[0].importance > 0.8
    assert {i.setting for i in found} == {"score_lambda", "lr", "selection"}  # seed is not one
    assert importance(compare(records[:5]), "best_val_accuracy") == []  # too few trials


def test_learning_curves_mean_and_band_per_epoch():
    records = [trial(s, run=f"run{s}", method="slot", k=8, m_test_accuracy=0.9) for s in range(3)]
    records.append(trial(0, run="failed", status="FAILED", method="slot", k=8))
    histories = {
        "run0": [(1, 0.5), (2, 0.7)],
        "run1": [(1, 0.6), (2, 0.8)],
        "run2": [(1, 0.7), (2, 0.9), (3, 0.95)],
        "failed": [(1, 0.0)],  # not a finished trial: not on the curve
    }
    (curve,) = curves(compare(records), histories)
    assert curve.epochs == [1, 2, 3]
    assert [p.mean for p in curve.points] == pytest.approx([0.6, 0.8, 0.95])
    assert curve.points[0].high == pytest.approx(0.6 + T_2 * 0.1 / math.sqrt(3))
    assert curve.points[2].n == 1 and not curve.points[2].defined


def test_search_front_of_several_objectives_with_their_modes():
    records = []
    # (accuracy max, size min, time min): a beats b in all three; c and d trade off
    values = {
        "a": (0.9, 10.0, 5.0),
        "b": (0.8, 20.0, 6.0),
        "c": (0.95, 50.0, 9.0),
        "d": (0.7, 5.0, 9.0),
    }
    for name, (acc, size, time) in values.items():
        for seed in range(2):
            records.append(
                trial(
                    seed,
                    method="slot",
                    k=len(name) + ord(name[0]),
                    m_test_accuracy=acc,
                    m_model_size_bytes=size,
                    m_train_time_s=time,
                )
            )
    rows = compare(records)
    objectives = [("test_accuracy", "max"), ("model_size_bytes", "min"), ("train_time_s", "min")]
    on = {row.settings["k"] for row in search_front(rows, objectives)}
    assert on == {str(1 + ord(n)) for n in "acd"}
    assert front_of([(1.0, 1.0), (1.0, 1.0), (0.5, 2.0)]) == [True, True, True]
