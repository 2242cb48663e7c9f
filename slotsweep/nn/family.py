"""Layer families: one architecture definition builds slot, dense and edge-popup networks."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from torch import nn

from slotsweep.nn.dense import DenseConv2d, DenseLinear
from slotsweep.nn.edge_popup import EdgePopupConv2d, EdgePopupLinear
from slotsweep.nn.slot import SlotConv2d, SlotLinear
from slotsweep.seeding import derive_seed

METHODS = ("slot", "dense", "edge_popup")


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

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")


class LayerFactory:
    """Builds one network's layers in order; layer i draws from seeds derived from (seed, i)."""

    def __init__(self, spec: LayerSpec) -> None:
        self.spec = spec
        self._index = itertools.count()

    def _seeds(self) -> dict[str, int]:
        spec, index = self.spec, next(self._index)
        seed = derive_seed(spec.seed, "layer", index)
        if spec.method != "slot":
            return {"seed": seed}
        values_seed = derive_seed(spec.seed, "global") if spec.sharing == "global" else None
        return {"seed": seed, "values_seed": values_seed}

    def _slot_kwargs(self) -> dict[str, object]:
        spec = self.spec
        return {"k": spec.k, "selection": spec.selection, "sharing": spec.sharing,
                "score_lambda": spec.score_lambda, "recipe": spec.recipe, "fused": spec.fused}

    def linear(self, in_features: int, out_features: int) -> nn.Module:
        """A bias-free fully connected layer of this family."""
        seeds, method = self._seeds(), self.spec.method
        if method == "slot":
            return SlotLinear(in_features, out_features, **self._slot_kwargs(), **seeds)
        if method == "edge_popup":
            return EdgePopupLinear(in_features, out_features, self.spec.keep_fraction, **seeds)
        return DenseLinear(in_features, out_features, **seeds)

    def conv(self, in_channels: int, out_channels: int, padding: int) -> nn.Module:
        """A bias-free 3x3 convolution of this family."""
        seeds, method = self._seeds(), self.spec.method
        if method == "slot":
            return SlotConv2d(in_channels, out_channels, 3, padding=padding,
                              **self._slot_kwargs(), **seeds)
        if method == "edge_popup":
            return EdgePopupConv2d(in_channels, out_channels, 3, self.spec.keep_fraction,
                                   padding=padding, **seeds)
        return DenseConv2d(in_channels, out_channels, 3, padding=padding, **seeds)
