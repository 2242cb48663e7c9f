"""Study files: the shipped studies validate, overrides apply, every problem names its key path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from slotsweep.config import TrialConfig, trial_key
from slotsweep.study.file import load_study
from slotsweep.study.plan import plan_summary, plan_table
from slotsweep.study.schema import StudyError
from slotsweep.study.validate import parse_study

STUDIES = Path(__file__).resolve().parents[1] / "studies"
K_SCAN = STUDIES / "k_scan.yaml"


@pytest.fixture
def raw() -> dict[str, Any]:
    """The k_scan document as YAML loads it, to break one key at a time."""
    return yaml.safe_load(K_SCAN.read_text())


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(StudyError) as caught:
        parse_study(raw, "test")
    return caught.value.problems


@pytest.mark.parametrize("name", ["smoke", "k_scan"])
def test_shipped_studies_validate_and_plan(name: str) -> None:
    study = load_study(STUDIES / f"{name}.yaml")
    assert study.name == name
    assert len(study.fixed_trials()) == study.trial_count()
    console = Console(width=120, record=True)
    console.print(plan_table(study))
    assert f"{study.trial_count()} trials" in console.export_text()
    assert "max_concurrent 2" in plan_summary(study)


def test_k_scan_expands_to_seven_k_and_a_baseline_over_three_seeds() -> None:
    study = load_study(K_SCAN)
    trials = study.fixed_trials()
    assert study.trial_count() == len(trials) == 7 * 3 + 1 * 3
    slot = [(t.k, t.seed) for t in trials if t.method == "slot"]
    assert slot[:4] == [(1, 0), (1, 1), (1, 2), (2, 0)]  # file order, seeds innermost
    dense = [t for t in trials if t.method == "dense"]
    assert [(t.lr, t.seed) for t in dense] == [(0.01, 0), (0.01, 1), (0.01, 2)]
    assert study.search_space() == {}
    assert study.experiment_name == "k_scan"
    assert study.tracking_uri(None) == "sqlite:///mlflow.db"
    assert study.tracking_uri("file:/tmp/mlruns") == "file:/tmp/mlruns"


def test_overrides_change_the_expansion() -> None:
    overrides = ["trial.epochs=1", "space.k.grid=[1,8]", "seeds=[0]", "baselines[0].lr=0.1"]
    trials = load_study(K_SCAN, overrides).fixed_trials()
    assert [(t.method, t.k, t.seed, t.epochs) for t in trials] == [
        ("slot", 1, 0, 1),
        ("slot", 8, 0, 1),
        ("dense", 8, 0, 1),
    ]
    assert trials[-1].lr == 0.1
    assert load_study(K_SCAN, ["baselines.0.lr=0.2"]).fixed_trials()[-1].lr == 0.2


def test_random_search_fixes_seeded_samples_and_optuna_only_the_baselines(
    raw: dict[str, Any],
) -> None:
    raw["space"] = {"k": {"choice": [1, 8]}, "lr": {"loguniform": [0.01, 1.0]}}
    raw["search"] = {"algorithm": "random", "num_samples": 4, "seed": 5}
    study = parse_study(raw)
    trials = study.fixed_trials()
    assert len(trials) == 4 * 3 + 3 and study.trial_count() == 15
    assert study.search_space() == {} and study.space_points() == parse_study(raw).space_points()
    samples = {(t.k, t.lr) for t in trials if t.method == "slot"}
    assert len(samples) == 4 and all(0.01 <= lr <= 1.0 and k in (1, 8) for k, lr in samples)
    assert all(sum((t.k, t.lr) == s for t in trials) == 3 for s in samples)  # once per seed
    raw["search"]["seed"] = 6
    assert parse_study(raw).space_points() != study.space_points()
    raw["space"] = {"k": {"choice": [1, 8]}}
    with pytest.raises(StudyError, match="distinct points"):
        parse_study(raw)
    raw["space"]["lr"] = {"loguniform": [0.01, 1.0]}
    raw["search"] = {"algorithm": "optuna", "num_samples": 5, "metric": ["a", "b"]}
    raw["search"]["mode"] = ["max", "min"]
    study = parse_study(raw)
    assert set(study.search_space()) == {"k", "lr"} and len(study.fixed_trials()) == 3
    assert study.trial_count() == 3 + 5 and study.search.sampler == "tpe"


def break_top_level(raw: dict[str, Any]) -> None:
    raw["foo"] = 1


def break_name(raw: dict[str, Any]) -> None:
    raw["name"] = "k scan!"


def break_trial_key(raw: dict[str, Any]) -> None:
    raw["trial"]["kk"] = 1


def break_trial_value(raw: dict[str, Any]) -> None:
    raw["trial"]["epochs"] = 0


def break_space_key(raw: dict[str, Any]) -> None:
    raw["space"]["kk"] = {"grid": [1]}


def break_grid_value(raw: dict[str, Any]) -> None:
    raw["space"]["k"]["grid"][0] = 0


def break_baseline(raw: dict[str, Any]) -> None:
    raw["baselines"][0]["method"] = "dnese"


def uniform_in_grid_search(raw: dict[str, Any]) -> None:
    raw["space"]["lr"] = {"uniform": [0.01, 0.1]}


def objectives_without_optuna(raw: dict[str, Any]) -> None:
    raw["search"] = {"algorithm": "random", "metric": ["a", "b"], "mode": ["max", "min"]}
    raw["space"] = {}


def asha_with_two_objectives(raw: dict[str, Any]) -> None:
    raw["search"] = {"algorithm": "optuna", "metric": ["a", "b"], "mode": ["max", "min"]}
    raw["scheduler"] = {"name": "asha"}
    raw["space"] = {}


def float_range_on_an_int_key(raw: dict[str, Any]) -> None:
    raw["search"] = {"algorithm": "random", "num_samples": 2}
    raw["space"] = {"k": {"uniform": [1, 64]}}


def break_search_section(raw: dict[str, Any]) -> None:
    raw["search"]["algorithm"] = "bayes"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (break_top_level, "(top level): unknown key 'foo'"),
        (break_name, "name: String should match pattern '^[A-Za-z0-9_-]+$'"),
        (break_trial_key, "trial.kk: unknown trial key 'kk'"),
        (break_trial_value, "trial.epochs: Input should be greater than or equal to 1"),
        (break_space_key, "space.kk: unknown trial key 'kk'"),
        (break_grid_value, "space.k.grid[0]: Input should be greater than or equal to 1"),
        (break_baseline, "baselines[0].method: Input should be 'slot', 'dense' or 'edge_popup'"),
        (uniform_in_grid_search, "space.lr.uniform: needs search.algorithm random or optuna"),
        (objectives_without_optuna, "search.metric: several objectives need algorithm optuna"),
        (asha_with_two_objectives, "scheduler.name: asha follows a single metric"),
        (
            float_range_on_an_int_key,
            "space.k.uniform: samples floats, but k takes none; use randint or choice",
        ),
        (break_search_section, "search.algorithm: Input should be 'grid', 'random' or 'optuna'"),
    ],
)
def test_each_problem_names_its_key_path(raw: dict[str, Any], mutate: Any, expected: str) -> None:
    mutate(raw)
    assert expected in problems_of(raw)


def test_every_problem_is_reported_at_once(raw: dict[str, Any]) -> None:
    for mutate in (break_top_level, break_name, break_trial_value, break_grid_value):
        mutate(raw)
    break_baseline(raw)
    uniform_in_grid_search(raw)
    problems = problems_of(raw)
    assert {path.split(":")[0] for path in problems} >= {
        "(top level)",
        "name",
        "trial.epochs",
        "space.k.grid[0]",
        "baselines[0].method",
        "space.lr.uniform",
    }


def test_combinations_and_repeats_are_refused(raw: dict[str, Any]) -> None:
    seeded, repeated = copy.deepcopy(raw), copy.deepcopy(raw)
    seeded["baselines"][0]["seed"] = 4
    assert "baselines[0].seed: seeds come from the top-level 'seeds' list" in problems_of(seeded)
    repeated["baselines"].append({"k": 8})  # the grid already holds K = 8
    assert "baselines[1]: same trial as space (k=8)" in problems_of(repeated)
    raw["space"]["method"] = {"grid": ["slot", "dense"]}
    raw["trial"]["finetune_epochs"] = 1
    assert "space.method.grid[1]: finetune_epochs applies to method 'slot' only" in problems_of(raw)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(StudyError) as caught:
        load_study(write(tmp_path, "name: x\ntrial: {epochs: 1\nseeds: [0]\n"))
    assert caught.value.problems[0].startswith("line 3, column")


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="line 4, column 3: duplicate key 'epochs'"):
        load_study(write(tmp_path, "name: x\ntrial:\n  epochs: 1\n  epochs: 2\n"))


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(StudyError) as caught:
        load_study(missing)
    assert caught.value.problems == [f"{missing}: no such study file"]


@pytest.mark.parametrize("override", ["trial.epochs", "=1", "baselines.5.lr=0.1", "name.x=1"])
def test_malformed_override_is_named(override: str) -> None:
    with pytest.raises(StudyError) as caught:
        load_study(K_SCAN, [override])
    assert caught.value.problems[0].startswith(f"--set {override}:")


def test_trial_key_ignores_where_a_trial_runs_but_not_what_it_computes() -> None:
    config = TrialConfig(k=8, seed=0).resolved()
    key = trial_key(config)
    assert len(key) == 12 and key == trial_key(TrialConfig(k=8, seed=0).resolved())
    moved = config.model_copy(update={"data_root": "/data", "device": "cpu", "num_threads": 2})
    assert trial_key(moved) == key
    assert trial_key(TrialConfig(k=16, seed=0).resolved()) != key
    assert trial_key(TrialConfig(k=8, seed=1).resolved()) != key
