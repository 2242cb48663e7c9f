"""Weight-trained baseline layers: ordinary bias-free layers with a seeded initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn

from slotsweep.nn.family import LayerFamily, Size
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


# A convolution's geometry beyond its channels and kernel: what every family's conv layer keeps
# under these names (as `nn.Conv2d` does), and what its dense export gets.
CONV_OPTIONS = ("stride", "padding", "dilation", "groups")


def conv_options(layer: nn.Module) -> dict[str, object]:
    """The geometry a conv layer keeps (`CONV_OPTIONS`), for `F.conv2d` or another layer."""
    return {name: getattr(layer, name) for name in CONV_OPTIONS if hasattr(layer, name)}


def conv_weight_shape(
    in_channels: int, out_channels: int, kernel_size: Size, groups: int
) -> tuple[int, int, int, int]:
    """(out, in / groups, kh, kw), as `nn.Conv2d` holds it."""
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{in_channels} and {out_channels} channels do not split in {groups} groups"
        )
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    return out_channels, in_channels // groups, kh, kw


class DenseConv2d(nn.Conv2d):
    """`nn.Conv2d` without bias, initialised from `seed`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        *,
        stride: Size = 1,
        padding: Size | str = 0,
        dilation: Size = 1,
        groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=False,
        )
        _seeded_default_init(self.weight, seed)


def dense_holding(weight: torch.Tensor, **options: object) -> nn.Module:
    """An ordinary layer holding a copy of `weight` (out, in) or (out, in / groups, kh, kw);
    `options` are a conv's geometry (`CONV_OPTIONS`)."""
    if weight.dim() == 2:
        layer: nn.Module = DenseLinear(weight.shape[1], weight.shape[0])
    else:
        groups = int(options.get("groups", 1))
        in_channels, kernel = weight.shape[1] * groups, tuple(weight.shape[2:])
        layer = DenseConv2d(in_channels, weight.shape[0], kernel, **options)
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
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        *,
        padding: Size | str,
        seed: int,
        **geometry: object,
    ) -> nn.Module:
        return DenseConv2d(
            in_channels, out_channels, kernel_size, padding=padding, seed=seed, **geometry
        )
