"""Weight-trained baseline layers: ordinary bias-free layers with a seeded initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn

from slotsweep.seeding import generator


def _seeded_default_init(weight: torch.Tensor, seed: int) -> None:
    """PyTorch's default initialisation (kaiming-uniform, a=sqrt(5)) drawn from an explicit seed."""
    with torch.no_grad():
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator(seed, "weight"))


class DenseLinear(nn.Linear):
    """`nn.Linear` without bias, initialised from `seed`."""

    def __init__(self, in_features: int, out_features: int, seed: int = 0) -> None:
        super().__init__(in_features, out_features, bias=False)
        _seeded_default_init(self.weight, seed)


class DenseConv2d(nn.Conv2d):
    """`nn.Conv2d` without bias, initialised from `seed`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, seed: int = 0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         bias=False)
        _seeded_default_init(self.weight, seed)
