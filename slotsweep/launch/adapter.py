"""The study as Tune sees it: the trainable (one trial through `run_trial`), the search space's
domains, the Optuna sampler, the ASHA scheduler, and the callback feeding the live view."""

from __future__ import annotations

import math
import pickle
from typing import Any

from ray import tune
from rich.console import Console

from slotsweep.config import TrialConfig
from slotsweep.launch.progress import StudyProgress, error_reason
from slotsweep.launch.trial import run_trial
from slotsweep.launch.workers import node_tags, prepare_gpu, tune_checkpointing
from slotsweep.study.schema import Dimension, Study
from slotsweep.tracking.store import TrackingTarget
from slotsweep.train.result import EpochMetrics, tune_epoch_keys

FAILED = "slotsweep_error"  # in a trial's final result: it raised (reported, not retried)


def tune_trial(
    params: dict[str, Any],
    *,
    base: dict[str, Any],
    target: TrackingTarget,
    threads: int,
    checkpoint_every: int = 0,
    gpu: float = 0.0,
    objectives: tuple[str, ...] = (),
) -> None:
    """The Tune trainable: one trial through the same `run_trial` that `slotsweep train` uses.
    A fixed trial gets its typed config in `params["trial"]`; a searched one, Optuna's values.

    A trial that raises (a bug, a NaN loss, missing data) is reported as failed in a final
    result instead of raising, so Tune's retries go only to trials whose worker or node was lost.
    """
    config = params.get("trial") or TrialConfig.model_validate({**base, **params})
    # threads = the trial's CPU share, so concurrent trials do not oversubscribe the cores
    config = config.model_copy(
        update={
            "num_threads": config.num_threads or threads,
            **prepare_gpu(config.model_dump(), gpu),
        }
    )
    trial_id = tune.get_context().get_trial_id() or "trial"
    checkpointing = tune_checkpointing(checkpoint_every, epoch_values, target.parent_run_id)
    try:
        run_trial(
            config,
            target,
            trial_id=trial_id,
            on_epoch=lambda metrics: tune.report(epoch_values(metrics)),
            on_final=lambda metrics, final: tune.report(
                {**({} if metrics is None else epoch_values(metrics)), **final}
            ),
            checkpointing=checkpointing,
            tags=node_tags(gpu),
        )
    except Exception as error:  # noqa: BLE001 - recorded in MLflow by run_trial; not retried
        # the objectives as NaN: Tune's schedulers and searchers require them in every result
        tune.report(
            {
                FAILED: f"{type(error).__name__}: {error}"[:500],
                **{metric: math.nan for metric in objectives},
            }
        )


def epoch_values(metrics: EpochMetrics) -> dict[str, float]:
    """The per-epoch values a Tune scheduler or searcher may follow."""
    values = metrics.metrics()
    return {key: values[key] for key in tune_epoch_keys() if key in values}


def tune_domain(dimension: Dimension) -> Any:
    """A study dimension as a Tune search-space domain for Optuna."""
    kind = dimension.kind
    if kind in ("grid", "choice"):
        return tune.choice(dimension.values)
    low, high = dimension.bounds
    if kind == "uniform":
        return tune.uniform(low, high)
    if kind == "loguniform":
        return tune.loguniform(low, high)
    return tune.randint(int(low), int(high))


def optuna_sampler(study: Study, resumed_trials: int = 0) -> Any:
    """The seeded Optuna sampler the study names; a resumed search shifts the seed, or the
    sampler's random start would propose the finished trials' configurations again."""
    import optuna

    samplers = {
        "tpe": optuna.samplers.TPESampler,
        "gp": optuna.samplers.GPSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
        "random": optuna.samplers.RandomSampler,
    }
    return samplers[study.search.sampler](seed=study.search.seed + resumed_trials)


def objective(study: Study) -> tuple[Any, Any]:
    """(metric, mode) for Tune: a string for one objective, lists for several."""
    metric, mode = study.search.metric, study.search.mode
    return (metric[0], mode[0]) if len(metric) == 1 else (metric, mode)


def asha_scheduler(study: Study, finetune_epochs: int) -> Any:
    if study.scheduler.name != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    metric, mode = objective(study)
    return ASHAScheduler(
        metric=metric,
        mode=mode,
        grace_period=study.scheduler.grace_period,
        reduction_factor=study.scheduler.reduction_factor,
        max_t=study.scheduler_max_t() + finetune_epochs,
    )


class ProgressCallback(tune.Callback):
    """Feeds Tune's trial events to the live view."""

    def __init__(
        self,
        progress: StudyProgress,
        on_start: Any = None,
        console: Console | None = None,
        namer: Any = None,
    ) -> None:
        self.progress, self.on_start, self.console = progress, on_start, console
        self.namer = namer  # Tune's trial config -> the trial's name in the live view

    def __getstate__(self) -> dict[str, Any]:
        return {}  # Tune pickles its run config to allow restores; the live view stays here

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.progress, self.on_start, self.console = StudyProgress(total=0), None, None

    def on_trial_start(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        self.progress.trial_started(
            trial.trial_id, self.namer(trial.config) if self.namer else None
        )
        if self.on_start is not None:
            self.on_start()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:  # noqa: ANN001
        if FAILED not in result:
            self.progress.trial_result(trial.trial_id, result)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        failure = (trial.last_result or {}).get(FAILED)
        if failure:
            self.progress.trial_failed(trial.trial_id, str(failure))
            if self.console is not None and self.progress.log is None:
                # above the live view, one line per failed trial (MLflow has the traceback)
                self.console.print(
                    f"trial {trial.trial_id} failed: {failure}", markup=False, highlight=False
                )
        else:
            self.progress.trial_finished(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        # The trial's local copy: get_pickled_error() reads storage, which syncs only later.
        try:
            with open(trial.pickled_error_file, "rb") as file:
                error = pickle.load(file)
        except Exception:  # noqa: BLE001 - an unreadable error still fails the trial
            error = None
        self.progress.trial_failed(trial.trial_id, error_reason(error))
