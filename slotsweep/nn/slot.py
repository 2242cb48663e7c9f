"""Slot-machine layers: K fixed random values per connection, learned scores choose one."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from slotsweep.nn.dense import conv_options, conv_weight_shape, dense_holding
from slotsweep.nn.family import LayerFamily, SelectingLayer, Size
from slotsweep.nn.init import default_score_lambda, value_sigma
from slotsweep.nn.native import GreedyWeight, serves
from slotsweep.nn.selection import SelectWeight, gather_values, greedy_indices, sampled_indices
from slotsweep.registry import SELECTIONS, SHARINGS
from slotsweep.seeding import derive_seed, generator


class SlotMixin(SelectingLayer):
    """Scores, candidate values and selection, shared by `SlotLinear` and `SlotConv2d`.

    `sharing="none"` stores (*weight_shape, K) values; `"layer"` stores K values for the layer;
    `"global"` stores K unit values drawn from `values_seed` (the same seed in every layer gives
    the whole network one set) scaled by this layer's sigma, so no values are stored per connection.
    With `fused=True` (greedy only) the selected weight is cached and the scores are updated by
    `slotsweep.nn.fused.SlotSGD` from the dense gradient, without materialising `scores.grad`.
    """

    def _init_slots(  # positional: each layer passes its constructor's settings on in order
        self,
        weight_shape: tuple[int, ...],
        is_conv: bool,
        k: int,
        selection: str,
        sharing: str,
        score_lambda: float | None,
        recipe: str,
        seed: int,
        values_seed: int | None,
        fused: bool,
    ) -> None:
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS.names()}, got {selection!r}")
        if sharing not in SHARINGS:
            raise ValueError(f"sharing must be one of {SHARINGS.names()}, got {sharing!r}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if fused and selection != "greedy":
            raise ValueError("the fused update serves greedy selection only")
        self.weight_shape, self.k = weight_shape, k
        self.selection, self.sharing = selection, sharing
        self.sigma = value_sigma(weight_shape, recipe)
        self.score_lambda = score_lambda or default_score_lambda(is_conv, recipe)
        self.seed = seed
        values_seed = seed if values_seed is None else values_seed
        self.values_seed = values_seed  # regenerates the values: what a ticket stores per layer
        values_shape = (*weight_shape, k) if sharing == "none" else (k,)
        unit = torch.rand(values_shape, generator=generator(values_seed, "values")) * 2 - 1
        self.register_buffer("values", unit * self.sigma)
        scores = torch.rand((*weight_shape, k), generator=generator(seed, "scores"))
        self.scores = nn.Parameter(scores * (self.score_lambda * self.sigma))
        self._sampler: torch.Generator | None = None
        self.fused = fused
        self.cached_weight: torch.Tensor | None = None  # not a buffer: it must stay a grad leaf
        self.update_path: str | None = None  # which fused update last ran (nn.fused)

    def candidates(self) -> torch.Tensor:
        """The K candidate values of every connection, shape (*weight_shape, K)."""
        return self.values.expand(*self.weight_shape, self.k)

    def selection_indices(self) -> torch.Tensor:
        """The chosen index per connection (argmax of the scores), int64 of weight_shape."""
        return greedy_indices(self.scores)

    def selected_weight(self) -> torch.Tensor:
        """The dense weight that the greedy selection picks."""
        return gather_values(self.values, self.selection_indices())

    def selection_state(self) -> torch.Tensor:
        """What this layer has learned to choose, for hashing and change tracking."""
        return self.selection_indices()

    def extra_flops_per_connection(self) -> int:
        """GS: K multiplies for the score gradient + K-1 comparisons for the argmax = 2K-1;
        PS adds K additions of Gumbel noise: 3K-1."""
        return 2 * self.k - 1 + (self.k if self.selection == "probabilistic" else 0)

    def index_bits(self) -> int:
        """ceil(log2 K) bits per connection (0 for K = 1)."""
        return math.ceil(math.log2(self.k)) if self.k > 1 else 0

    def dense_weight(self) -> torch.Tensor:
        return self.selected_weight().detach()

    def as_dense(self) -> nn.Module:
        """The ordinary layer computing what this one computes at evaluation."""
        return dense_holding(self.dense_weight(), **conv_options(self))

    def _sample_generator(self) -> torch.Generator:
        if self._sampler is None or self._sampler.device != self.scores.device:
            self._sampler = generator(self.seed, "sampling", device=self.scores.device)
        return self._sampler

    def effective_weight(self) -> torch.Tensor:
        """This forward pass's weight: PS samples afresh while training, GS takes the argmax
        (natively on the CPU where the kernel serves the tensors: the same weight and gradient
        in one pass each way)."""
        if self.fused:
            return self._fused_weight()
        if self.training and self.selection == "probabilistic":
            indices = sampled_indices(self.scores, self._sample_generator())
        elif serves(self.scores, self.values):
            return GreedyWeight.apply(self.scores, self.values)
        else:
            indices = greedy_indices(self.scores)
        return SelectWeight.apply(self.scores, self.values, indices)

    def _fused_weight(self) -> torch.Tensor:
        """A leaf holding the selected weight; its .grad is the dense gradient SlotSGD uses."""
        cached = self.cached_weight
        if cached is None or cached.device != self.scores.device:
            self.refresh_cached_weight()
        return self.cached_weight

    def refresh_cached_weight(self) -> None:
        """Recompute the cached selection (after scores change outside `SlotSGD`)."""
        self.cached_weight = self.selected_weight().detach().requires_grad_(True)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.cached_weight = None


class SlotLinear(SlotMixin):
    """A fully connected slot layer without bias."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        k: int,
        *,
        selection: str = "greedy",
        sharing: str = "none",
        score_lambda: float | None = None,
        recipe: str = "paper",
        seed: int = 0,
        values_seed: int | None = None,
        fused: bool = False,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        shape = (out_features, in_features)
        settings = (selection, sharing, score_lambda, recipe, seed, values_seed, fused)
        self._init_slots(shape, False, k, *settings)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight())

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, k={self.k}, "
            f"selection={self.selection}, sharing={self.sharing}"
        )


class SlotConv2d(SlotMixin):
    """A 2-D convolutional slot layer without bias."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        k: int,
        *,
        stride: Size = 1,
        padding: Size | str = 0,
        dilation: Size = 1,
        groups: int = 1,
        selection: str = "greedy",
        sharing: str = "none",
        score_lambda: float | None = None,
        recipe: str = "paper",
        seed: int = 0,
        values_seed: int | None = None,
        fused: bool = False,
    ) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        shape = conv_weight_shape(in_channels, out_channels, kernel_size, groups)
        settings = (selection, sharing, score_lambda, recipe, seed, values_seed, fused)
        self._init_slots(shape, True, k, *settings)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), **conv_options(self))

    def extra_repr(self) -> str:
        out, per_group, kh, kw = self.weight_shape
        return (
            f"{per_group * self.groups}, {out}, kernel={(kh, kw) if kh != kw else kh}, "
            f"k={self.k}, stride={self.stride}, padding={self.padding}, "
            + (f"dilation={self.dilation}, " if self.dilation not in (1, (1, 1)) else "")
            + (f"groups={self.groups}, " if self.groups != 1 else "")
            + f"selection={self.selection}, sharing={self.sharing}"
        )


class SlotFamily(LayerFamily):
    """Slot machines; with `sharing="global"` every layer draws its values from one seed."""

    name = "slot"
    default_lr = None  # the recipe's, by selection and K

    def _options(self, seed: int, score_lambda: float | None) -> dict[str, object]:
        spec = self.spec
        values_seed = derive_seed(spec.seed, "global") if spec.sharing == "global" else None
        return {
            "selection": spec.selection,
            "sharing": spec.sharing,
            "score_lambda": score_lambda,
            "recipe": spec.recipe,
            "fused": spec.fused,
            "seed": seed,
            "values_seed": values_seed,
        }

    def linear(self, in_features: int, out_features: int, *, seed: int) -> nn.Module:
        return SlotLinear(
            in_features, out_features, self.spec.k, **self._options(seed, self.spec.score_lambda)
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
        spec = self.spec
        conv_lambda = spec.score_lambda_conv
        if conv_lambda is None:
            conv_lambda = spec.score_lambda
        return SlotConv2d(
            in_channels,
            out_channels,
            kernel_size,
            spec.k,
            padding=padding,
            **geometry,
            **self._options(seed, conv_lambda),
        )
