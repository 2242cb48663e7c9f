"""Weight-trained baseline layers: ordinary bias-free layers with a seeded initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn

from slotsweep.nn.family import LayerFamily
from slotsweep.seeding import generator


def _seeded_default_init(weight: torch.Tensor, seed: int) -> None:
    """PyTorch's default initialisation (kaiming-uniform, a=sqrt(5)) drawn from an explicit seed."""
    with torch.no_grad():
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator(seed, "weight"))


class DenseLinear(nn.Linear):
    """`nn.Linear` without bias, initialised from `seed`."""

    def __init__(self, in_features: int, out_features: int, *, seed: int = 0) -> None:
        super().__init__(in_features, out_features, bias=False)
        _seeded_default_init(self.weight, seed)


class DenseConv2d(nn.Conv2d):
    """`nn.Conv2d` without bias, initialised from `seed`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        _seeded_default_init(self.weight, seed)


def dense_holding(weight: torch.Tensor, *, stride: int = 1, padding: int = 0) -> nn.Module:
    """An ordinary layer holding a copy of `weight` (out, in) or (out, in, kh, kw)."""
    if weight.dim() == 2:
        layer: nn.Module = DenseLinear(weight.shape[1], weight.shape[0])
    else:
        layer = DenseConv2d(
            weight.shape[1], weight.shape[0], weight.shape[2], stride=stride, padding=padding
        )
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer.to(weight.device)


class DenseFamily(LayerFamily):
    """The weight-trained baseline."""

    name = "dense"
    default_lr = 0.01

    def linear(self, in_features: int, out_features: int, *, seed: int) -> nn.Module:
        return DenseLinear(in_features, out_features, seed=seed)

    def conv(
        self, in_channels: int, out_channels: int, kernel_size: int, *, padding: int, seed: int
    ) -> nn.Module:
        return DenseConv2d(in_channels, out_channels, kernel_size, padding=padding, seed=seed)
