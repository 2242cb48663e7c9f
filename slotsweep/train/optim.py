"""Optimiser, training step and learning-rate schedule of a trial; schedules are registered by
name."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, CosineAnnealingWarmRestarts, LRScheduler

from slotsweep.nn.fused import SlotSGD, fused_layers
from slotsweep.registry import SCHEDULES

# (optimizer, epochs, restart_period) -> the per-epoch scheduler, or None for a constant rate
ScheduleBuilder = Callable[[torch.optim.Optimizer, int, int], "LRScheduler | None"]


def register_schedule(name: str) -> Callable[[ScheduleBuilder], ScheduleBuilder]:
    """Adds a schedule: a new value of the `schedule` trial key."""

    def add(builder: ScheduleBuilder) -> ScheduleBuilder:
        return SCHEDULES.register(name, builder)

    return add


@register_schedule("warm_restarts")
def _warm_restarts(optimizer: torch.optim.Optimizer, epochs: int, period: int) -> LRScheduler:
    """SGDR: restarts after `period` epochs, then periods doubling (25, 75, ...)."""
    return CosineAnnealingWarmRestarts(optimizer, T_0=period, T_mult=2)


@register_schedule("cosine")
def _cosine(optimizer: torch.optim.Optimizer, epochs: int, period: int) -> LRScheduler:
    return CosineAnnealingLR(optimizer, T_max=epochs)


@register_schedule("constant")
def _constant(optimizer: torch.optim.Optimizer, epochs: int, period: int) -> None:
    return None


def build_optimizer(
    model: nn.Module, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """SGD with momentum and L2 on every trainable tensor; fused slot layers update in SlotSGD."""
    fused = fused_layers(model)
    fused_params = {id(layer.scores) for layer in fused}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in fused_params]
    return SlotSGD(params, fused, lr=lr, momentum=momentum, weight_decay=weight_decay)


def build_schedule(
    optimizer: torch.optim.Optimizer, schedule: str, epochs: int, restart_period: int
) -> LRScheduler | None:
    """The per-epoch scheduler the registered schedule `schedule` builds (None: constant)."""
    return SCHEDULES.get(schedule)(optimizer, epochs, restart_period)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_sum: torch.Tensor,
    correct: torch.Tensor,
) -> None:
    """One SGD step on the batch (x, y): the trainer's step, which `bench/gpu_check.py` times.
    Adds the batch's summed loss and correct count to `loss_sum` and `correct` in place, on the
    device: no host sync per step (the epoch reads them once at its end)."""
    optimizer.zero_grad(set_to_none=True)
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    optimizer.step()
    loss_sum += loss.detach() * y.numel()
    correct += (logits.detach().argmax(1) == y).sum()
