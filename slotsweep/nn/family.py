"""Layer families: one architecture definition builds slot, dense and edge-popup networks.

A family is a registered `LayerFamily` subclass (`registry.FAMILIES`, its name is the trial's
`method`); the layers it builds that choose among fixed random values derive from
`SelectingLayer`, which says what the metrics need of them.
"""

from __future__ import annotations

import abc
import itertools
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from slotsweep.registry import FAMILIES
from slotsweep.seeding import derive_seed

Size = int | tuple[int, int]  # a conv's kernel, stride or dilation, as `nn.Conv2d` takes it


@dataclass(frozen=True)
class LayerSpec:
    """Which layer family to build and its settings (those of other families are ignored)."""

    method: str = "slot"
    k: int = 8
    selection: str = "greedy"
    sharing: str = "none"
    score_lambda: float | None = None
    recipe: str = "paper"
    keep_fraction: float = 0.5
    seed: int = 0
    fused: bool = False
    score_lambda_conv: float | None = None  # None: score_lambda, else the recipe's

    def __post_init__(self) -> None:
        FAMILIES.get(self.method)  # names the known methods when this one is not


class LayerFamily(abc.ABC):
    """Builds the layers of one family from a `LayerSpec`; layer `seed`s come from the factory."""

    name: ClassVar[str]
    default_lr: ClassVar[float | None]  # None: the recipe's score learning rate (slot)

    def __init__(self, spec: LayerSpec) -> None:
        self.spec = spec

    @abc.abstractmethod
    def linear(self, in_features: int, out_features: int, *, seed: int) -> nn.Module:
        """A bias-free fully connected layer."""

    @abc.abstractmethod
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
        """A bias-free convolution; `geometry`: `stride`, `dilation`, `groups` as `nn.Conv2d`
        takes them (passed by `slotify` for layers of other models; the paper's archs use the
        defaults), kept under those names as `nn.Conv2d` keeps them."""


def register_family(family: type[LayerFamily]) -> type[LayerFamily]:
    """Adds a family under its `name`: a new trial `method` (the one place to declare it)."""
    FAMILIES.register(family.name, family)
    return family


def family_class(method: str) -> type[LayerFamily]:
    """The registered family of `method`."""
    return FAMILIES.get(method)


class SelectingLayer(nn.Module):
    """A layer whose training chooses among fixed random weights (slot, edge-popup): what the
    metrics and the dense export read of it."""

    weight_shape: tuple[int, ...]

    def selection_state(self) -> torch.Tensor:
        """What the layer has learned to choose (int64), for hashing and change tracking."""
        raise NotImplementedError

    def extra_flops_per_connection(self) -> int:
        """Work per training step and connection beyond a dense layer's (see `metrics`)."""
        raise NotImplementedError

    def index_bits(self) -> int:
        """Bits per connection that store the choice for inference."""
        raise NotImplementedError

    def dense_weight(self) -> torch.Tensor:
        """The weight of the equivalent ordinary layer (at evaluation)."""
        raise NotImplementedError


class LayerFactory:
    """Builds one network's layers in order; layer i draws from seeds derived from (seed, i)."""

    def __init__(self, spec: LayerSpec) -> None:
        self.spec = spec
        self.family = family_class(spec.method)(spec)
        self._index = itertools.count()

    def _seed(self) -> int:
        return derive_seed(self.spec.seed, "layer", next(self._index))

    def linear(self, in_features: int, out_features: int) -> nn.Module:
        """A bias-free fully connected layer of this family."""
        return self.family.linear(in_features, out_features, seed=self._seed())

    def conv(self, in_channels: int, out_channels: int, padding: int) -> nn.Module:
        """A bias-free 3x3 convolution of this family."""
        return self.family.conv(in_channels, out_channels, 3, padding=padding, seed=self._seed())

    def like(self, module: nn.Linear | nn.Conv2d) -> nn.Module:
        """A bias-free layer of this family with the shape and geometry of `module` (an
        `nn.Linear` or `nn.Conv2d`), on its device; its bias, if any, is not carried over."""
        if isinstance(module, nn.Conv2d):
            if module.padding_mode != "zeros":
                raise ValueError(f"padding_mode {module.padding_mode!r} is not supported")
            layer = self.family.conv(
                module.in_channels,
                module.out_channels,
                module.kernel_size,
                padding=module.padding,
                seed=self._seed(),
                stride=module.stride,
                dilation=module.dilation,
                groups=module.groups,
            )
        elif isinstance(module, nn.Linear):
            layer = self.family.linear(module.in_features, module.out_features, seed=self._seed())
        else:
            raise TypeError(f"a linear or conv layer, not {type(module).__name__}")
        return layer.to(module.weight.device)
