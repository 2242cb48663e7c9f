"""Optimiser and learning-rate schedule of a trial."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    LRScheduler,
)

from slotsweep.nn.fused import SlotSGD, fused_layers


def build_optimizer(model: nn.Module, lr: float, momentum: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    """SGD with momentum and L2 on every trainable tensor; fused slot layers update in SlotSGD."""
    fused = fused_layers(model)
    fused_params = {id(layer.scores) for layer in fused}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in fused_params]
    return SlotSGD(params, fused, lr=lr, momentum=momentum, weight_decay=weight_decay)


def build_schedule(optimizer: torch.optim.Optimizer, schedule: str, epochs: int,
                   restart_period: int) -> LRScheduler | None:
    """Per-epoch schedule: SGDR (restarts at restart_period, then x2: 25, 75, ...), cosine, none."""
    if schedule == "warm_restarts":
        return CosineAnnealingWarmRestarts(optimizer, T_0=restart_period, T_mult=2)
    if schedule == "cosine":
        return CosineAnnealingLR(optimizer, T_max=epochs)
    return None
