"""One trial with its MLflow run: the code path `slotsweep train` and every Ray trial share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from slotsweep.config import ResolvedConfig, TrialConfig, trial_key
from slotsweep.tracking.runs import MlflowTrialRun
from slotsweep.tracking.store import TrackingTarget
from slotsweep.tracking.tags import CHECKPOINT_DAMAGED, RESUMED_FROM_EPOCHS
from slotsweep.train.checkpoint import TrainingState
from slotsweep.train.result import EpochMetrics, TrialResult
from slotsweep.train.trainer import EpochCallback, train_trial

# the last epoch's report (None for a trial a resumed study had finished) and the final metrics
FinalCallback = Callable[[EpochMetrics | None, dict[str, float]], None]


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
    load: Callable[[str], TrainingState | None]  # None: no good state (damaged): epoch 0
    latest: TrainingState | None = None
    damaged: str | None = None  # what `load` passed over as damaged, for the run's tag
    after_save: Callable[[], None] | None = None  # after each recorded save (a launch's stop)


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
    on_final: FinalCallback | None = None,
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
    resume = checkpointing.latest if checkpointing else None
    run = None
    if target is not None:
        run, resume = _open_run(config, target, trial_id, checkpointing, resume, tags)
        if run.finished:
            metrics = run.final_metrics()
            if on_final:
                on_final(None, metrics)
            return TrialOutcome(None, metrics, run.run_id)
        # where it runs now, and (restored) after how many epochs it went on from a checkpoint
        resumed = {RESUMED_FROM_EPOCHS: str(resume.epochs_done)} if resume else {}
        if checkpointing and checkpointing.damaged:
            resumed[CHECKPOINT_DAMAGED] = checkpointing.damaged[:5000]
        run.set_tags({**(tags or {}), **resumed})
    reports = _Reports(config, run, checkpointing, on_epoch)
    result = _train_logged(reports, resume)
    metrics = result.final_metrics()
    if on_final:
        on_final(reports.last, metrics)
    return TrialOutcome(result, metrics, run.run_id if run else None)


def _open_run(
    config: ResolvedConfig,
    target: TrackingTarget,
    trial_id: str,
    checkpointing: Checkpointing | None,
    resume: TrainingState | None,
    tags: dict[str, str] | None = None,
) -> tuple[MlflowTrialRun, TrainingState | None]:
    """The trial's MLflow run (reopened from a restored state's run id, found again by its
    trial key, or new, created with `tags`) and the state to go on from, if any."""
    if resume is not None and resume.run_id:
        return MlflowTrialRun.reopen(target.uri, resume.run_id), resume
    run = MlflowTrialRun.open(
        target.uri,
        target.experiment_id,
        config,
        trial_key=trial_key(config),
        trial_id=trial_id,
        study_name=target.study_name,
        parent_run_id=target.parent_run_id,
        phase=target.phase,
        commit=target.commit,
        extra_tags=tags,
    )
    if checkpointing and run.checkpoint and not run.finished:
        resume = checkpointing.load(run.checkpoint)
    return run, resume


@dataclass
class _Reports:
    """Where each epoch's report goes: the MLflow run, then a checkpoint's save, or `on_epoch`;
    the last epoch is held for `on_final`, after the run is closed."""

    config: ResolvedConfig
    run: MlflowTrialRun | None
    checkpointing: Checkpointing | None
    on_epoch: EpochCallback | None
    last: EpochMetrics | None = None
    pending: list[TrainingState] = field(default_factory=list)

    def keep(self, state: TrainingState) -> None:
        """A checkpoint's state, saved with the report of its epoch."""
        state.run_id = self.run.run_id if self.run is not None else None
        self.pending.append(state)

    def report(self, metrics: EpochMetrics) -> None:
        last = is_last_epoch(self.config, metrics)
        if self.run is not None:
            self.run.log_epoch(metrics, last)
        if last:
            self.last = metrics
        elif self.pending and self.checkpointing is not None:
            location = self.checkpointing.save(metrics, self.pending.pop())
            if location and self.run is not None:
                self.run.set_checkpoint(location)
            if self.checkpointing.after_save is not None:
                self.checkpointing.after_save()
        elif self.on_epoch is not None:
            self.on_epoch(metrics)


def _train_logged(reports: _Reports, resume: TrainingState | None) -> TrialResult:
    """Trains, and ends the MLflow run as the training ended: FINISHED, KILLED or FAILED."""
    run, checkpointing = reports.run, reports.checkpointing
    try:
        result = train_trial(
            reports.config,
            reports.report,
            resume_from=resume,
            on_checkpoint=reports.keep if checkpointing else None,
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
    return result
