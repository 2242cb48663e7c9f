"""Edge-popup layers (Ramanujan et al., 2020): keep the top fraction of frozen weights by score."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from slotsweep.nn.dense import conv_options, conv_weight_shape, dense_holding
from slotsweep.nn.family import LayerFamily, SelectingLayer, Size
from slotsweep.nn.init import fans
from slotsweep.seeding import generator


class TopMask(torch.autograd.Function):
    """Forward: 1 for the top `keep` fraction of `ranks`, else 0. Backward: straight through."""

    @staticmethod
    def forward(ctx, ranks: torch.Tensor, keep: float):
        flat = ranks.detach().flatten()
        kept = max(1, round(keep * flat.numel()))
        mask = torch.zeros_like(flat)
        mask[flat.topk(kept, sorted=False).indices] = 1.0
        return mask.view_as(ranks)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class EdgePopupMixin(SelectingLayer):
    """Signed-Kaiming-constant frozen weights and one kaiming-uniform score per connection."""

    def _init_edge_popup(
        self, *, weight_shape: tuple[int, ...], keep_fraction: float, seed: int
    ) -> None:
        if not 0 < keep_fraction <= 1:
            raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
        self.weight_shape, self.keep_fraction = weight_shape, keep_fraction
        self.values_seed = seed  # regenerates the frozen weights: what a ticket stores per layer
        fan_in, _ = fans(weight_shape)
        signs = torch.rand(weight_shape, generator=generator(seed, "signs")) < 0.5
        constant = math.sqrt(2.0 / fan_in)
        self.register_buffer("weight", torch.where(signs, -constant, constant))
        scores = torch.empty(weight_shape)
        nn.init.kaiming_uniform_(scores, a=math.sqrt(5), generator=generator(seed, "scores"))
        self.scores = nn.Parameter(scores)

    def mask(self) -> torch.Tensor:
        """The current 0/1 mask of kept connections: the largest |scores|.

        The straight-through gradient passes through |score| (as in the authors' code), so it
        reaches a score as sign(score) * dL/dw_eff * w. Sent to the signed score instead, it
        pushes every negative score the wrong way (a connection that helps gets a more negative
        score, whose magnitude then keeps it), and the network does not learn."""
        return TopMask.apply(self.scores.abs(), self.keep_fraction)

    def effective_weight(self) -> torch.Tensor:
        """Frozen weights times the mask; the score gradient is sign(s) * dL/dw_eff * w."""
        return self.weight * self.mask()

    def selection_state(self) -> torch.Tensor:
        """The mask as int64, for hashing and change tracking."""
        return self.mask().detach().to(torch.int64)

    def extra_flops_per_connection(self) -> int:
        """|score|, the threshold comparison, the mask multiply and the score gradient."""
        return 4

    def index_bits(self) -> int:
        """A 1-bit mask per connection."""
        return 1

    def dense_weight(self) -> torch.Tensor:
        return self.effective_weight().detach()

    def as_dense(self) -> nn.Module:
        """The ordinary layer computing what this one computes."""
        return dense_holding(self.dense_weight(), **conv_options(self))


class EdgePopupLinear(EdgePopupMixin):
    """A fully connected edge-popup layer without bias."""

    def __init__(
        self, in_features: int, out_features: int, *, keep_fraction: float = 0.5, seed: int = 0
    ) -> None:
        super().__init__()
        self._init_edge_popup(
            weight_shape=(out_features, in_features), keep_fraction=keep_fraction, seed=seed
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight())


class EdgePopupConv2d(EdgePopupMixin):
    """A 2-D convolutional edge-popup layer without bias."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        *,
        keep_fraction: float = 0.5,
        stride: Size = 1,
        padding: Size | str = 0,
        dilation: Size = 1,
        groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        shape = conv_weight_shape(in_channels, out_channels, kernel_size, groups)
        self._init_edge_popup(weight_shape=shape, keep_fraction=keep_fraction, seed=seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), **conv_options(self))


class EdgePopupFamily(LayerFamily):
    """Edge-popup: frozen signed-constant weights, the top `keep_fraction` kept by score."""

    name = "edge_popup"
    default_lr = 0.1

    def linear(self, in_features: int, out_features: int, *, seed: int) -> nn.Module:
        return EdgePopupLinear(
            in_features, out_features, keep_fraction=self.spec.keep_fraction, seed=seed
        )

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
        return EdgePopupConv2d(
            in_channels,
            out_channels,
            kernel_size,
            keep_fraction=self.spec.keep_fraction,
            padding=padding,
            seed=seed,
            **geometry,
        )
