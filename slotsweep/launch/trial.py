"""One trial with its MLflow run: the code path `slotsweep train` and every Ray trial share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from slotsweep.config import TrialConfig, trial_key
from slotsweep.tracking.runs import MlflowTrialRun
from slotsweep.tracking.store import TrackingTarget
from slotsweep.tracking.tags import RESUMED_FROM_EPOCHS
from slotsweep.train.checkpoint import TrainingState
from slotsweep.train.result import EpochMetrics, TrialResult
from slotsweep.train.trainer import EpochCallback, train_trial


@dataclass
class Checkpointing:
    """How a trial saves and finds its checkpoints (the caller's storage; Tune's in a study).

    `save(metrics, state)` hands over one epoch's report with its state and returns where the
    state now lies; `load(location)` reads a state back; `latest` is a state to go on from (the
    one Tune restored after a lost worker), else the location the trial's MLflow run records is
    used, if any.
    """

    every: int
    save: Callable[[EpochMetrics, TrainingState], str | None]
    load: Callable[[str], TrainingState]
    latest: TrainingState | None = None


@dataclass
class TrialOutcome:
    """A trained result, or the metrics of a run a resumed study had already finished."""

    result: TrialResult | None
    metrics: dict[str, float]
    run_id: str | None = None


def is_last_epoch(config: TrialConfig, metrics: EpochMetrics) -> bool:
    """Whether this is the trial's final epoch report (of the last phase)."""
    if config.finetune_epochs:
        return metrics.phase == "finetune" and metrics.epoch == config.finetune_epochs
    return metrics.epoch == config.epochs


def run_trial(
    config: TrialConfig,
    target: TrackingTarget | None,
    *,
    trial_id: str = "local",
    on_epoch: EpochCallback | None = None,
    on_final: Callable[[EpochMetrics | None, dict[str, float]], None] | None = None,
    checkpointing: Checkpointing | None = None,
    tags: dict[str, str] | None = None,
) -> TrialOutcome:
    """Trains (or skips, if already finished) one trial, logging to `target` when given.

    `on_epoch` sees every epoch but the last; `on_final` gets the last epoch together with the
    final metrics, after the MLflow run is closed, so a scheduler stopping the trial at that
    report cannot leave the run open. With `checkpointing`, a checkpoint's epoch goes to its
    `save` instead of `on_epoch`, and a trial with a saved state goes on from it under the same
    MLflow run (reopened by the run id the state carries). `tags` say where the trial runs.
    """
    config = config.resolved()  # what the trial logs and trains with, every default explicit
    key = trial_key(config)
    run, resume = None, checkpointing.latest if checkpointing else None
    if target is not None:
        if resume is not None and resume.run_id:
            run = MlflowTrialRun.reopen(target.uri, resume.run_id)
        else:
            run = MlflowTrialRun.open(
                target.uri,
                target.experiment_id,
                config,
                trial_key=key,
                trial_id=trial_id,
                study_name=target.study_name,
                parent_run_id=target.parent_run_id,
                phase=target.phase,
                commit=target.commit,
            )
            if checkpointing and run.checkpoint and not run.finished:
                resume = checkpointing.load(run.checkpoint)
        if run.finished:
            metrics = run.final_metrics()
            if on_final:
                on_final(None, metrics)
            return TrialOutcome(None, metrics, run.run_id)
        # where it runs now, and (restored) after how many epochs it went on from a checkpoint
        resumed = {RESUMED_FROM_EPOCHS: str(resume.epochs_done)} if resume else {}
        run.set_tags({**(tags or {}), **resumed})
    held: list[EpochMetrics] = []
    pending: list[TrainingState] = []

    def keep(state: TrainingState) -> None:
        state.run_id = run.run_id if run is not None else None
        pending.append(state)

    def report(metrics: EpochMetrics) -> None:
        if run is not None:
            run.log_epoch(metrics)
        if is_last_epoch(config, metrics):
            held.append(metrics)
        elif pending and checkpointing is not None:
            location = checkpointing.save(metrics, pending.pop())
            if location and run is not None:
                run.set_checkpoint(location)
        elif on_epoch is not None:
            on_epoch(metrics)

    try:
        result = train_trial(
            config,
            report,
            resume_from=resume,
            on_checkpoint=keep if checkpointing else None,
            checkpoint_every=checkpointing.every if checkpointing else 0,
        )
    except (SystemExit, KeyboardInterrupt):
        # a scheduler's stop (Ray Tune exits the trial's thread) or Ctrl-C: not a failure
        if run is not None:
            run.stop()
        raise
    except BaseException as error:
        if run is not None:
            run.fail(error)
        raise
    if run is not None:
        run.finish(result)
    metrics = result.final_metrics()
    if on_final:
        on_final(held[-1] if held else None, metrics)
    return TrialOutcome(result, metrics, run.run_id if run else None)
