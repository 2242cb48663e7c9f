"""The trainer: one plain function from a trial config to a result; it knows no Ray or MLflow."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from slotsweep.config import ResolvedConfig, TrialConfig, default_lr
from slotsweep.data import BatchLoader, DataSplits
from slotsweep.nn import native
from slotsweep.seeding import seed_torch
from slotsweep.train.build import (
    EVAL_BATCH,
    build_model,
    copy_selected_weights,
    evaluate,
    resolve_device,
    trial_data,
    use_fused,
)
from slotsweep.train.checkpoint import TrainingState, is_due, restore_rng, rng_state
from slotsweep.train.device import apply_precision
from slotsweep.train.metrics import (
    PeakMemory,
    change_fraction,
    dense_flops_per_example,
    extra_flops_per_step,
    memory_state_bytes,
    model_size_bytes,
    selection_sha256,
    selection_states,
    split_summaries,
)
from slotsweep.train.optim import build_optimizer, build_schedule, train_step
from slotsweep.train.result import EpochMetrics, TrialFailed, TrialResult
from slotsweep.train.ticket import encode_ticket

EpochCallback = Callable[[EpochMetrics], None]
CheckpointCallback = Callable[[TrainingState], None]


@dataclass
class _Phase:
    """One training phase: a model, its optimiser settings and its epochs."""

    name: str
    model: nn.Module
    lr: float
    epochs: int
    last: bool = True  # the trial's last phase (its final epoch needs no checkpoint)


@dataclass
class _PhaseResult:
    best_val: float
    test_at_best: float
    best_epoch: int
    flops: float
    memory_state: int


class _Runner:
    """Runs the phases of one trial on prepared data and reports each epoch."""

    def __init__(
        self,
        config: TrialConfig,
        data: DataSplits,
        device: torch.device,
        report: EpochCallback | None,
        on_checkpoint: CheckpointCallback | None = None,
        checkpoint_every: int = 0,
        resume_from: TrainingState | None = None,
    ) -> None:
        self.config, self.data, self.device, self.report = config, data, device, report
        self.on_checkpoint, self.checkpoint_every = on_checkpoint, checkpoint_every
        self.resume_from = resume_from
        self.epochs: list[EpochMetrics] = list(resume_from.history) if resume_from else []
        self.carry: dict[str, object] = {}  # what a finetuning checkpoint adds (the slot phase)
        self.elapsed = resume_from.elapsed_s if resume_from else 0.0
        self.started = time.perf_counter()
        common = {"mean": data.mean, "std": data.std, "device": device}
        self.train_loader = BatchLoader(
            data.train,
            config.batch_size,
            shuffle=True,
            augment=data.augment,
            seed=config.seed,
            **common,
        )
        self.val_loader = BatchLoader(data.val, EVAL_BATCH, shuffle=False, **common)
        self.test_loader = BatchLoader(data.test, EVAL_BATCH, shuffle=False, **common)
        # the first phase's network at its best-val epoch (a restored trial's comes with it)
        self.ticket: bytes | None = resume_from.ticket if resume_from else None

    def run(self, phase: _Phase, flops: float = 0.0) -> _PhaseResult:
        """Trains one phase; `flops` is the cost of earlier phases, carried into the reports."""
        model, config = phase.model.to(self.device), self.config
        optimizer = build_optimizer(model, phase.lr, config.momentum, config.weight_decay)
        schedule = build_schedule(optimizer, config.schedule, phase.epochs, config.restart_period)
        example = next(iter(self.train_loader))[0][:2]
        per_example = dense_flops_per_example(model, example)
        per_step = extra_flops_per_step(model)
        best, first = (-1.0, 0.0, 0), 1
        resume = self.resume_from
        if resume is not None and resume.phase == phase.name:
            model.load_state_dict(resume.model)
            optimizer.load_state_dict(resume.optimizer)
            if schedule is not None:
                schedule.load_state_dict(resume.schedule)
            best, flops, first = resume.best, resume.flops, resume.epoch + 1
            restore_rng(model, resume.rng)  # last: the set-up above may draw (dropout in FLOPs)
        for epoch in range(first, phase.epochs + 1):
            metrics, steps, seen = self._epoch(model, optimizer, epoch, phase)
            flops += per_example * seen + per_step * steps
            test = evaluate(model, self.test_loader)
            if metrics.val_accuracy > best[0]:
                best = (metrics.val_accuracy, test, epoch)
                if phase.name == "train":  # the network test_accuracy was measured on
                    self.ticket = encode_ticket(model)
            metrics.best_val_accuracy, metrics.training_cost_flops = best[0], flops
            if schedule is not None:
                schedule.step()
            self.epochs.append(metrics)
            if self.on_checkpoint is not None and is_due(
                epoch, self.checkpoint_every, phase.epochs if phase.last else -1
            ):
                # before the epoch's report, so a caller can hand both over in one message
                self.on_checkpoint(
                    TrainingState(
                        phase.name,
                        epoch,
                        model.state_dict(),
                        optimizer.state_dict(),
                        None if schedule is None else schedule.state_dict(),
                        best,
                        flops,
                        list(self.epochs),
                        rng_state(model),
                        self.elapsed + time.perf_counter() - self.started,
                        ticket=self.ticket,
                        **self.carry,
                    )
                )
            if self.report is not None:
                self.report(metrics)
        return _PhaseResult(best[0], best[1], best[2], flops, memory_state_bytes(model, optimizer))

    def _epoch(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, phase: _Phase
    ) -> tuple[EpochMetrics, int, int]:
        before = selection_states(model)
        self.train_loader.set_epoch(epoch)
        model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = steps = 0
        lr = optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        data_time, batches = 0.0, iter(self.train_loader)
        while True:
            fetch = time.perf_counter()
            batch = next(batches, None)
            data_time += time.perf_counter() - fetch
            if batch is None:
                break
            x, y = batch
            train_step(model, optimizer, x, y, loss_sum, correct)
            seen, steps = seen + y.numel(), steps + 1
        train_loss = loss_sum.item() / seen
        if self.config.fail_on_nan and not math.isfinite(train_loss):
            raise TrialFailed(f"training loss became {train_loss} in {phase.name} epoch {epoch}")
        after = selection_states(model)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=correct.item() / seen,
            val_accuracy=evaluate(model, self.val_loader),
            epoch_time_s=time.perf_counter() - start,
            data_time_s=data_time,
            lr=lr,
            selection_change_fraction=change_fraction(before, after) if after else None,
            phase=phase.name,
        )
        return metrics, steps, seen


@contextlib.contextmanager
def frozen_heap() -> Iterator[Callable[[], None]]:
    """Keeps the garbage collector off the objects that exist now while training runs.

    After importing torch, pydantic, rich and the rest, a process holds over 300k objects, and a
    full collection walks them all: a 0.1-0.15 s pause that Python's thresholds put somewhere in
    an early epoch. Frozen objects are still freed when unreferenced; only new objects are
    scanned. Yields `settle`, which freezes what has been made since (call it between epochs: the
    first report makes MLflow and Ray build thousands of objects). Left alone, with a `settle`
    that does nothing, if the caller already froze the heap.
    """
    if gc.get_freeze_count():
        yield lambda: None
        return
    gc.collect()
    gc.freeze()
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()


def _slot_phase(
    runner: _Runner, model: nn.Module, resume_from: TrainingState | None, fused: bool
) -> tuple[_PhaseResult, str]:
    """The first phase (slot, dense or edge-popup training) and which update ran; a restore in
    finetuning takes both from its checkpoint."""
    config = runner.config
    if resume_from is not None and resume_from.phase == "finetune":
        model.load_state_dict(resume_from.slot_model)
        # the slot phase ran before the restore: its update path comes with the checkpoint
        return _PhaseResult(**resume_from.earlier), resume_from.extra.get("impl", "reference")
    last = not config.finetune_epochs
    result = runner.run(_Phase("train", model, config.lr, config.epochs, last))
    return result, native.update_tag(model) if fused else "reference"


def _finetune_phase(
    runner: _Runner, model: nn.Module, slot: _PhaseResult, impl: str
) -> _PhaseResult:
    """Weight-trains the selected network (dense, its default lr), carrying the slot phase's
    results in every checkpoint."""
    config = runner.config
    dense = build_model(config, runner.data, method="dense")
    copy_selected_weights(model, dense)
    runner.carry = {
        "earlier": dataclasses.asdict(slot),
        "slot_model": model.state_dict(),
        "extra": {"impl": impl},
    }
    lr = default_lr("dense", config.selection, config.k, config.recipe)
    return runner.run(_Phase("finetune", dense, lr, config.finetune_epochs), slot.flops)


def _result(
    config: ResolvedConfig,
    runner: _Runner,
    model: nn.Module,
    data: DataSplits,
    result: _PhaseResult,
    flops: float,
    finetune_test: float | None,
    impl: str,
    peak: PeakMemory,
    started: float,
) -> TrialResult:
    """The trial's result: the first phase's selection and its test accuracy at the best
    validation epoch, the cost of every phase, memory and storage."""
    return TrialResult(
        test_accuracy=result.test_at_best,
        best_val_accuracy=result.best_val,
        best_epoch=result.best_epoch,
        training_cost_flops=flops,
        memory_state_bytes=result.memory_state,
        peak_memory_bytes=peak.peak_bytes(),
        model_size_bytes=model_size_bytes(model),
        train_time_s=runner.elapsed + time.perf_counter() - started,
        params=config.model_dump(),
        epochs=runner.epochs,
        selection_sha256=selection_sha256(model),
        finetune_test_accuracy=finetune_test,
        device=str(runner.device),
        impl=impl,
        training_memory_bytes=peak.training_bytes(),
        datasets=split_summaries(data, config.dataset),
        ticket=runner.ticket,
    )


def train_trial(
    config: TrialConfig,
    report: EpochCallback | None = None,
    *,
    resume_from: TrainingState | None = None,
    on_checkpoint: CheckpointCallback | None = None,
    checkpoint_every: int = 0,
) -> TrialResult:
    """Trains one trial and returns its result; `report` is called after every epoch.

    Every `checkpoint_every` epochs of a phase (0: never) `on_checkpoint` gets the whole training
    state, just before that epoch's report; `resume_from` (such a state) goes on after its epoch
    and ends exactly where an uninterrupted run ends. A config not yet resolved is resolved here
    (resolving a `ResolvedConfig` returns it as it is).
    """
    config = config.resolved()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    seed_torch(config.seed)  # dropout draws from torch's generator
    device = resolve_device(config.device)
    apply_precision(config.precision, device)
    peak = PeakMemory(device)
    started = time.perf_counter()
    data = trial_data(config)
    fused = use_fused(config, device)
    model = build_model(config, data, fused=fused)
    with frozen_heap() as settle:

        def on_epoch(metrics: EpochMetrics) -> None:
            if report is not None:
                report(metrics)
            settle()

        runner = _Runner(
            config, data, device, on_epoch, on_checkpoint, checkpoint_every, resume_from
        )
        result, impl = _slot_phase(runner, model, resume_from, fused)
        flops, finetune_test = result.flops, None
        if config.finetune_epochs:
            tuned = _finetune_phase(runner, model, result, impl)
            flops, finetune_test = tuned.flops, tuned.test_at_best
    return _result(config, runner, model, data, result, flops, finetune_test, impl, peak, started)
