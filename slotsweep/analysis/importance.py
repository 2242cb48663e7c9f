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


def _evaluator(name: str):  # noqa: ANN202 - an Optuna evaluator
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    # fANOVA's random forest is seeded so that a report is the same each time it is drawn
    return FanovaImportanceEvaluator(seed=0) if name == "fanova" else PedAnovaImportanceEvaluator()


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
        scores = optuna.importance.get_param_importances(study, evaluator=_evaluator(name))
        result += [Importance(key, float(score), name) for key, score in scores.items()]
    return result
