"""Which settings move a study's objective: Optuna's importance evaluators (fANOVA and
PED-ANOVA) fed with the study's finished trials, whatever searched them (grid, random, Optuna).

Each finished trial becomes one Optuna trial: its settings (every param but the seed and the
runtime ones) that vary between configurations (`varying_settings`: a baseline's placeholders
for slot-only keys, such as sharing `n/a`, do not make a key vary) with the objective as its
value. A setting whose values are all numbers is a float distribution over their range, any
other a categorical one (a placeholder such as `n/a` is then one of its categories)."""

from __future__ import annotations

from dataclasses import dataclass

from slotsweep.analysis.groups import ConfigurationRow, number, varying_settings

MIN_TRIALS = 8  # finished trials below which importance is not estimated (too few to split)
EVALUATORS = ("fanova", "ped_anova")
# fANOVA's time grows with its trees times the trials each tree splits (its leaves): Optuna's 64
# trees up to TREE_BUDGET / 64 trials, fewer beyond, down to MIN_TREES (1,000 trials: 16 trees,
# ranked as 64 trees rank them: tests/test_report_scale.py, docs/analysis.md#importance)
TREES, MIN_TREES, TREE_BUDGET = 64, 16, 64 * 250


def fanova_trees(trials: int) -> int:
    """The trees of fANOVA's forest for a study of `trials` finished trials."""
    return max(MIN_TREES, min(TREES, TREE_BUDGET // max(trials, 1)))


@dataclass(frozen=True)
class Importance:
    setting: str
    importance: float
    evaluator: str


def trials(rows: list[ConfigurationRow], metric: str) -> list[tuple[dict[str, str], float]]:
    """(settings, objective) of every finished trial that logged `metric`."""
    return [(row.settings, value) for row in rows for value in row.values.get(metric, [])]


def _distributions(settings: list[dict[str, str]], keys: list[str]) -> dict[str, object]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    found = {}
    for key in keys:
        values = [s.get(key, "-") for s in settings]
        if len(set(values)) < 2:
            continue
        numbers = [number(v) for v in values]
        if all(n is not None for n in numbers):
            found[key] = FloatDistribution(min(numbers), max(numbers))
        else:
            found[key] = CategoricalDistribution(sorted(set(values)))
    return found


def _evaluator(name: str, trials: int):  # noqa: ANN202 - an Optuna evaluator
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    if name != "fanova":
        return PedAnovaImportanceEvaluator()
    # fANOVA's random forest is seeded so that a report is the same each time it is drawn
    return FanovaImportanceEvaluator(n_trees=fanova_trees(trials), seed=0)


def importance(
    rows: list[ConfigurationRow],
    metric: str = "best_val_accuracy",
    mode: str = "max",
    min_trials: int = MIN_TRIALS,
    evaluators: tuple[str, ...] = EVALUATORS,
) -> list[Importance]:
    """Each varying setting's importance for `metric` under each evaluator, most important
    first per evaluator; [] below `min_trials` finished trials or without a varying setting."""
    import optuna

    found = trials(rows, metric)
    distributions = _distributions([s for s, _ in found], varying_settings(rows))
    if len(found) < min_trials or not distributions:
        return []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for settings, value in found:
        params = {
            key: (float(settings[key]) if hasattr(dist, "low") else settings.get(key, "-"))
            for key, dist in distributions.items()
        }
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=value)
        )
    result = []
    for name in evaluators:
        scores = optuna.importance.get_param_importances(
            study, evaluator=_evaluator(name, len(found))
        )
        result += [Importance(key, float(score), name) for key, score in scores.items()]
    return result
