"""Reports from trial records built for the test: each figure's plotted values (read back from
its CSV), the paper comparison and its verdicts, the findings, the order of rows, the HTML page."""

from __future__ import annotations

import base64
import csv
import itertools
import re
import statistics

import pytest

from slotsweep.config import TrialConfig
from slotsweep.report import (
    compare,
    comparison_table,
    findings,
    paper_points,
    paper_table,
    write_report,
)
from slotsweep.report.paper_numbers import FIGURE, NUMBERS, TEXT, paper_number
from slotsweep.tracking.params import trial_params
from slotsweep.train.result import TrialRecord

LENET = {"arch": "lenet_300_100", "dataset": "mnist", "epochs": 200}
_ids = itertools.count()


def record(accuracies, status="FINISHED", **settings):
    """One FINISHED trial record per accuracy (seeds 0, 1, ...), params as MLflow stores them."""
    records = []
    for seed, accuracy in enumerate(accuracies):
        config = TrialConfig(**{**LENET, **settings, "seed": seed})
        cost = 1e12 * config.epochs * (1.1 if config.method == "slot" else 1.0)
        metrics = {
            "test_accuracy": accuracy,
            "best_val_accuracy": accuracy,
            "training_cost_flops": cost + seed,
            "model_size_bytes": {"slot": 1000.0 * config.k, "edge_popup": 33300.0, "dense": 8e5}[
                config.method
            ],
        }
        if config.finetune_epochs:
            metrics["finetune_test_accuracy"] = accuracy + 0.01
        records.append(
            TrialRecord(f"run{next(_ids)}", status, trial_params(config.resolved()), metrics, None)
        )
    return records


def study_figures(written):
    """The figures that fit the study (the fronts, importance and curves aside)."""
    extras = ("pareto_", "importance", "learning_curves")
    return [p.name for p in written if p.suffix == ".png" and not p.name.startswith(extras)]


def read_csv(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def k_records():
    """GS and PS against K, and the weight-trained network, two seeds each."""
    records = []
    for k, selection in itertools.product([1, 2, 8, 64], ["greedy", "probabilistic"]):
        base = 0.1 if k == 1 else 0.95 + 0.01 * (selection == "greedy") + 0.001 * k / 64
        records += record([base, base + 0.002], k=k, selection=selection)
    return records + record([0.98, 0.982], method="dense", lr=0.01)


def test_rows_are_ordered_by_varied_keys_with_baselines_last():
    records = k_records()
    shuffled = records[::-1][::2] + records[::-1][1::2]  # finishing order is not the order
    rows = compare(shuffled)
    keys = [(r.settings["method"], r.settings.get("selection"), r.settings.get("k")) for r in rows]
    assert keys[-1][0] == "dense"
    assert keys[:4] == [("slot", "greedy", k) for k in ("1", "2", "8", "64")]
    assert keys[4:8] == [("slot", "probabilistic", k) for k in ("1", "2", "8", "64")]
    table = comparison_table(rows)
    assert table.row_count == len(rows)


def test_accuracy_vs_k_plots_the_means_and_the_paper(tmp_path):
    records = k_records()
    written = write_report(compare(records), tmp_path)
    names = {path.name for path in written}
    assert {
        "accuracy_vs_k.png",
        "accuracy_vs_k.csv",
        "gs_vs_ps.png",
        "gs_vs_ps.csv",
        "report.html",
        "comparison.csv",
        "paper_comparison.csv",
    } <= names
    points = read_csv(tmp_path / "accuracy_vs_k.csv")
    by = {(p["series"], p["x"]): p for p in points}
    for r in records:  # every plotted mean is the mean over seeds of the records, in %
        s = r.params
        key = (
            (("GS" if s["selection"] == "greedy" else "PS"), s["k"])
            if s["method"] == "slot"
            else ("lenet_300_100 weight-trained", "baseline")
        )
        group = [
            x.metrics["test_accuracy"]
            for x in records
            if x.params == {**s, "seed": x.params["seed"]}
        ]
        assert float(by[key]["y"]) == pytest.approx(100 * statistics.fmean(group))
        assert float(by[key]["y_std"]) == pytest.approx(100 * statistics.stdev(group))
    assert float(by[("GS", "8")]["paper_y"]) == 98.2  # the text's number
    assert float(by[("PS", "64")]["paper_y"]) == 97.8  # figure 2's
    assert float(by[("lenet_300_100 weight-trained", "baseline")]["paper_y"]) == 98.0
    bars = read_csv(tmp_path / "gs_vs_ps.csv")
    assert [(b["series"], b["x"]) for b in bars] == [
        (s, k) for s in ("GS", "PS") for k in ("1", "2", "8", "64")
    ]


def test_verdicts_from_our_interval_and_the_papers_precision(tmp_path):
    # paper GS K=8: 98.2 +- 0.05 (text): within when our 95% interval lies in 98.2 +- 1.05.
    # Three seeds, sd 0.05 points: half-width t(0.975, 2) x 0.05 / sqrt(3) = 0.124 points.
    inside = record([0.9745, 0.975, 0.9755], k=8)  # [97.38, 97.62] inside [97.15, 99.25]
    exact = record([0.9695, 0.97, 0.9705], k=2)  # 97.00 vs the text's 97.0
    far = record([0.958, 0.960, 0.962], k=4)  # [95.50, 96.50], all below 98.0 - 1.1
    above = record([0.996, 0.997, 0.998], k=16)  # [99.45, 99.95], all above 98.2 + 1.1
    points = {p.label: p for p in paper_points(compare(inside + exact + far + above))}
    assert points["slot k=8"].verdict == "within"
    assert points["slot k=8"].difference == pytest.approx(-0.7)
    assert points["slot k=8"].tolerance == pytest.approx(1.05)
    half = 4.302652729911275 * 0.05 / 3**0.5  # t(0.975, 2), worked by hand
    assert points["slot k=8"].interval.low == pytest.approx(97.5 - half)
    assert points["slot k=8"].interval.high == pytest.approx(97.5 + half)
    assert points["slot k=2"].verdict == "within"
    assert points["slot k=4"].verdict == "below" and not points["slot k=4"].within
    assert points["slot k=16"].verdict == "above"
    # an interval that crosses an edge of the band decides nothing; nor does one seed
    wide = paper_points(compare(record([0.95, 0.97, 0.99], k=4)))[0]  # 97 +- 4.97 vs 98 +- 1.1
    assert wide.verdict == "inconclusive"
    (single,) = paper_points(compare(record([0.975], k=8)))
    assert single.verdict == "inconclusive" and "one seed" in single.ours_text
    # the csv carries the paper's value, the verdict and our interval beside ours
    write_report(compare(inside + far), tmp_path)
    table = {r["k"]: r for r in read_csv(tmp_path / "comparison.csv")}
    assert float(table["8"]["paper_test_accuracy"]) == pytest.approx(0.982)
    assert table["4"]["verdict"] == "below"
    assert float(table["8"]["ci_low"]) == pytest.approx((97.5 - half) / 100)
    assert float(table["8"]["ci_high"]) == pytest.approx((97.5 + half) / 100)
    paper_rows = read_csv(tmp_path / "paper_comparison.csv")
    assert [r["configuration"] for r in paper_rows] == ["slot k=4", "slot k=8"]
    assert float(paper_rows[1]["ours_ci_low"]) == pytest.approx(97.5 - half)


def test_points_at_reduced_scale_or_on_a_stand_in_are_marked():
    reduced = record(
        [0.85], k=8, dataset="fashion_mnist", epochs=10, train_subset=1000, schedule="cosine"
    )
    point = paper_points(compare(reduced))[0]
    assert (
        "reduced scale: 10 of 200 epochs, 1000 training examples, cosine schedule" in point.marks[0]
    )
    assert point.marks[1] == "fashion_mnist standing in for mnist"
    assert paper_points(compare(record([0.98], k=8)))[0].marks == ()
    # settings the paper did not run have no paper number: another lr, lambda, sharing
    others = (
        record([0.9], k=8, lr=0.05)
        + record([0.9], k=8, score_lambda=1.0)
        + record([0.9], k=8, sharing="layer")
    )
    assert paper_points(compare(others)) == []


def test_paper_numbers_carry_source_and_precision():
    assert all(n.source in (TEXT, FIGURE) and n.precision > 0 for n in NUMBERS)
    assert paper_number("lenet_300_100", "slot", "greedy", 2).value == 97.0  # text over figure
    assert paper_number("lenet_300_100", "slot", "greedy", 4).source == FIGURE
    assert paper_number("conv4", "dense").value == 86.5
    assert paper_number("vgg19", "slot", "greedy", 8).value == 91.0
    assert paper_number("conv6", "slot", "probabilistic", 1).value == 10.0
    assert paper_number("conv2", "edge_popup") is None


def test_sharing_figure_and_finding(tmp_path):
    records = []
    for sharing, k in itertools.product(["none", "layer"], [2, 64]):
        cost = 0.2 if (sharing == "layer" and k == 2) else 0.001 * (sharing == "layer")
        records += record([0.97 - cost, 0.971 - cost], k=k, sharing=sharing)
    rows = compare(records)
    write_report(rows, tmp_path)
    points = read_csv(tmp_path / "sharing_vs_k.csv")
    assert {(p["series"], p["x"]) for p in points} == {
        (f"sharing {s}", str(k)) for s in ("none", "layer") for k in (2, 64)
    }
    small = next(p for p in points if (p["series"], p["x"]) == ("sharing layer", "2"))
    assert float(small["y"]) == pytest.approx(100 * (0.97 + 0.971) / 2 - 20)
    (finding,) = [f for f in findings(rows) if "sharing" in f.claim]
    assert finding.verdict == "held" and "cost at K=2: +20.00" in finding.evidence


def test_lambda_lr_heatmap_cells(tmp_path):
    records = []
    for lam, lr in itertools.product([0.1, 1.0], [0.05, 0.2]):
        records += record([0.9 + lam / 100 + lr / 10], k=8, score_lambda=lam, lr=lr)
    written = write_report(compare(records), tmp_path)
    assert study_figures(written) == ["lambda_lr_heatmap.png"]
    cells = {
        (p["series"], float(p["x"])): float(p["y"])
        for p in read_csv(tmp_path / "lambda_lr_heatmap.csv")
    }
    assert cells == pytest.approx(
        {
            (f"lambda {lam:g}", lr): 100 * (0.9 + lam / 100 + lr / 10)
            for lam, lr in itertools.product([0.1, 1.0], [0.05, 0.2])
        }
    )
    (finding,) = [f for f in findings(compare(records)) if "initialisation" in f.claim]
    assert "best lambda 1, lr 0.2: 93.00%" in finding.evidence
    assert "lr 0.2: 92.10% (-0.90)" in finding.evidence


def test_finetune_split_and_cost_figures(tmp_path):
    records = []
    seeds = [0.0, 0.002, 0.004]  # the same seed moves both methods alike: a paired difference
    for slot, tune in [(1, 3), (2, 2), (3, 1)]:
        accuracies = [0.90 + 0.01 * slot + d for d in seeds]
        records += record(accuracies, k=8, epochs=slot, finetune_epochs=tune)
    records += record([0.88 + d for d in seeds], method="dense", lr=0.01, epochs=4)
    rows = compare(records)
    write_report(rows, tmp_path)
    split = read_csv(tmp_path / "finetune_split.csv")
    assert [float(p["x"]) for p in split] == [0.0, 0.25, 0.5, 0.75]  # slot share of 4 epochs
    assert [float(p["y"]) for p in split] == pytest.approx([88.2, 92.2, 93.2, 94.2])
    cost = {
        (p["series"], round(float(p["x"]), 6)): float(p["y"])
        for p in read_csv(tmp_path / "accuracy_vs_cost.csv")
    }
    assert cost[("dense", 4.0)] == pytest.approx(88.2)  # 4 epochs x 1e12 FLOPs
    assert cost[("slot + finetuning", 1.1)] == pytest.approx(92.2)  # finetuned accuracy
    (finding,) = [f for f in findings(rows) if "weight training alone" in f.claim]
    assert finding.verdict == "held" and "3 of 3 splits" in finding.evidence
    assert "1+3: +4.00 [+4.00, +4.00] (3 seeds)" in finding.evidence


def test_storage_figure_and_edge_popup_observation(tmp_path):
    records = (
        record([0.95], k=2)
        + record([0.96], k=8)
        + record([0.93], method="edge_popup", keep_fraction=0.5, epochs=100)
        + record([0.98], method="dense", lr=0.01)
    )
    rows = compare(records)
    write_report(rows, tmp_path)
    points = {
        (p["series"], float(p["x"])): float(p["y"])
        for p in read_csv(tmp_path / "accuracy_vs_storage.csv")
    }
    assert points == pytest.approx(
        {
            ("slot", 2.0): 95.0,
            ("slot", 8.0): 96.0,
            ("edge_popup", 33.3): 93.0,
            ("dense", 800.0): 98.0,
        }
    )
    (finding,) = [f for f in findings(rows) if "edge-popup" in f.claim]
    assert finding.held is None and "-2.00 points" in finding.evidence


def test_cost_figure_for_a_study_that_varies_epochs(tmp_path):
    records = []
    for method, epochs in itertools.product(["slot", "dense"], [1, 2]):
        records += record(
            [0.5 + 0.1 * epochs], method=method, epochs=epochs, arch="conv2", dataset="cifar10"
        )
    written = write_report(compare(records), tmp_path)
    assert study_figures(written) == ["accuracy_vs_cost.png"]
    cost = read_csv(tmp_path / "accuracy_vs_cost.csv")
    assert [(p["series"], float(p["x"])) for p in cost] == [
        ("dense", 1.0),
        ("dense", 2.0),
        ("slot", 1.1),
        ("slot", 2.2),
    ]


def test_k_findings_chance_jump_and_gs_above_ps():
    rows = compare(k_records())
    claims = {f.claim: f for f in findings(rows)}
    assert claims["K=1 trains to chance (about 10%) (greedy)"].held
    assert claims["a large jump from K=1 to K=2 (greedy)"].held
    gs_ps = next(f for c, f in claims.items() if c.startswith("greedy selection"))
    assert gs_ps.held and "K=2 +1.00" in gs_ps.evidence
    worse = compare(
        record([0.9], k=2, selection="greedy") + record([0.95], k=2, selection="probabilistic")
    )
    # one seed: the difference is shown, no verdict is decided on it
    one = next(f for f in findings(worse) if f.claim.startswith("greedy"))
    assert one.verdict == "inconclusive" and "K=2 -5.00 (one seed)" in one.evidence


def test_html_page_is_self_contained(tmp_path):
    records = record([0.85, 0.86], k=8, dataset="fashion_mnist", epochs=5) + record(
        [0.1, 0.1], k=1, dataset="fashion_mnist", epochs=5
    )
    write_report(compare(records), tmp_path, title="t", settings={"name": "study-x"})
    page = (tmp_path / "report.html").read_text()
    assert "fashion_mnist standing in for mnist" in page
    assert "study-x" in page and "torch" in page and "mlflow" in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert images and base64.b64decode(images[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing outside the page


def test_distance_to_the_weight_trained_network_beside_the_papers():
    records = record([0.86], k=8, dataset="fashion_mnist") + record(
        [0.89], method="dense", lr=0.01, dataset="fashion_mnist"
    )
    slot, dense = paper_points(compare(records))
    assert slot.ours_vs_baseline == pytest.approx(-3.0)
    assert slot.paper_vs_baseline == pytest.approx(98.2 - 98.0)
    assert dense.ours_vs_baseline is None


def test_closing_table_fits_100_columns_and_says_shared_marks_once():
    from rich.console import Console

    records = []
    for k, selection, sharing in itertools.product(
        [1, 2, 8, 64], ["greedy", "probabilistic"], ["none", "layer"]
    ):
        records += record([0.9, 0.91, 0.92], k=k, selection=selection, sharing=sharing)
    records += record([0.95, 0.96, 0.97], k=8, epochs=150, finetune_epochs=50)
    records += record([0.98, 0.981, 0.982], method="dense", lr=0.01)
    rows = compare(records)
    console = Console(width=100, record=True)
    for table in (comparison_table(rows), paper_table(paper_points(rows))):
        assert console.measure(table).maximum <= 100
        console.print(table)
    text = console.export_text()
    assert "every configuration: 3 seed(s)" in text  # said once, not a column
    assert text.count("reduced scale") <= 1  # a mark every point shares: said once


def test_pareto_csv_importance_and_html_sections(tmp_path):
    records = k_records()  # 9 configurations x 2 seeds: 18 finished trials
    write_report(compare(records), tmp_path, objectives=[("test_accuracy", "max")])
    fronts = {r["configuration"]: r for r in read_csv(tmp_path / "pareto.csv")}
    # model size 1000 K bytes: K=1 (10%, GS and PS tie: both on it), then GS at each K (GS is
    # above PS at the same size), then the dense network
    on = {name for name, r in fronts.items() if r["front_model_size_bytes"] == "True"}
    assert on == {
        "slot k=1 probabilistic",
        "slot k=1 greedy",
        "slot k=2 greedy",
        "slot k=8 greedy",
        "slot k=64 greedy",
        "dense",
    }
    assert float(fronts["dense"]["test_accuracy"]) == pytest.approx(0.981)
    ranked = [r for r in read_csv(tmp_path / "importance.csv") if r["evaluator"] == "fanova"]
    assert ranked[0]["setting"] in ("k", "method", "lr")  # K (and what follows it) decides
    figures = list(tmp_path.glob("*.png"))  # each with a CSV of exactly what it plots
    assert len(figures) >= 4 and all((tmp_path / f"{f.stem}.csv").exists() for f in figures)
    plotted = {r["configuration"]: r for r in read_csv(tmp_path / "pareto_model_size_bytes.csv")}
    assert plotted["dense"]["on_front"] == "True"
    assert float(plotted["dense"]["test_accuracy_percent"]) == pytest.approx(98.1)
    page = (tmp_path / "report.html").read_text()
    assert "Pareto fronts" in page and "Importance" in page and "pareto.csv" in page
    assert "t-interval, n-1 degrees of freedom" in page
    few = tmp_path / "few"
    write_report(compare(record([0.9, 0.91], k=8)), few)
    assert not (few / "importance.csv").exists()
    assert "importance not estimated: 2 finished trials" in (few / "report.html").read_text()


def test_a_multi_objective_search_shows_its_front_first_and_the_summary_describes_it(tmp_path):
    import json

    from slotsweep.tracking.summary import summary_values

    records = k_records()
    rows = compare(records)
    objectives = [("best_val_accuracy", "max"), ("model_size_bytes", "min")]
    write_report(rows, tmp_path, objectives=objectives)
    page = (tmp_path / "report.html").read_text()
    assert page.index("its Pareto front") < page.index("The paper's findings")
    front = {
        r["configuration"]: r["front_search"] for r in read_csv(tmp_path / "pareto_search.csv")
    }
    assert front["slot k=64 greedy"] == "True" and front["slot k=64 probabilistic"] == "False"
    assert (tmp_path / "pareto_search.png").exists()
    tags, metrics = summary_values(records, rows, objectives)
    described = json.loads(tags["best.front"])
    assert metrics["best.front_size"] == len(described) == sum(v == "True" for v in front.values())
    assert described[0]["k"] == "0" and described[0]["method"] == "dense"  # most accurate first
    assert metrics["best.front.0.best_val_accuracy"] == pytest.approx(0.981)
    assert "Pareto front" in tags["slotsweep.best_by"] and "best.k" not in tags


def test_findings_csv_has_each_comparison_a_finding_was_decided_on(tmp_path):
    # GS - PS at K=2: +1.0, +0.8, +1.2 points: mean 1.0, s 0.2, t(0.975, 2) x 0.2 / sqrt(3)
    records = record([0.950, 0.952, 0.954], k=2, selection="greedy")
    records += record([0.940, 0.944, 0.942], k=2, selection="probabilistic")
    write_report(compare(records), tmp_path)
    (row,) = [r for r in read_csv(tmp_path / "findings.csv") if r["comparison"] == "K=2 GS - PS"]
    half = 4.302652729911275 * 0.2 / 3**0.5
    assert float(row["mean"]) == pytest.approx(1.0)
    assert float(row["ci_low"]) == pytest.approx(1.0 - half)
    assert float(row["ci_high"]) == pytest.approx(1.0 + half)
    assert (row["seeds"], row["threshold"], row["claimed_side"]) == ("3", "0.0", "above")
    assert row["comparison_verdict"] == row["verdict"] == "held"
