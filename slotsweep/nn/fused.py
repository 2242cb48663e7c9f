"""The fused slot-machine update: score gradient, SGD-momentum step and re-selection in one pass.

A fused layer caches its selected weight as a leaf; backward leaves the ordinary dense gradient
dL/dW in that leaf's `.grad`. `SlotSGD.step` then does, per connection and for every k,
    g = dL/dW * W_k + weight_decay * s_k;  buf_k = momentum * buf_k + g;  s_k -= lr * buf_k
and picks the new argmax, exactly as autograd + `torch.optim.SGD` + argmax would, but reading
each (K)-sized array once. The plain PyTorch version below is what the kernels are tested
against: `slotsweep.nn.triton_update` on CUDA, `slotsweep.nn.native` on the CPU (built at
install, else at run time).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from slotsweep.nn import native, triton_update
from slotsweep.nn.selection import gather_values, score_gradient
from slotsweep.nn.slot import SlotMixin


def fused_layers(model: nn.Module) -> list[SlotMixin]:
    """The slot layers of `model` whose scores `SlotSGD` updates itself."""
    return [m for m in model.modules() if isinstance(m, SlotMixin) and m.fused]


def fused_update_reference(
    layer: SlotMixin, buffer: torch.Tensor | None, lr: float, momentum: float, weight_decay: float
) -> torch.Tensor:
    """Plain PyTorch fused step for one layer; returns the momentum buffer."""
    scores = layer.scores.data
    grad = score_gradient(layer.cached_weight.grad, layer.values)
    if weight_decay:
        grad = grad.add(scores, alpha=weight_decay)
    if momentum:
        buffer = grad.clone() if buffer is None else buffer.mul_(momentum).add_(grad)
        grad = buffer
    scores.add_(grad, alpha=-lr)
    layer.cached_weight.data.copy_(gather_values(layer.values, scores.argmax(-1)))
    return buffer


def fused_update(
    layer: SlotMixin, buffer: torch.Tensor | None, lr: float, momentum: float, weight_decay: float
) -> torch.Tensor | None:
    """One fused step: the Triton kernel where it serves this layer (CUDA), the native one where
    it does (CPU), else the PyTorch version; `layer.update_path` records which ran ('triton',
    'native' or 'pytorch', for `native.update_tag`)."""
    for path, kernel in (("triton", triton_update), ("native", native)):
        if kernel.supports(layer):
            layer.update_path = path
            first_step = bool(momentum) and buffer is None
            if first_step:
                buffer = torch.empty_like(layer.scores)
            kernel.update(layer, buffer, lr, momentum, weight_decay, first_step=first_step)
            return buffer
    layer.update_path = "pytorch"
    return fused_update_reference(layer, buffer, lr, momentum, weight_decay)


class SlotSGD(torch.optim.SGD):
    """`torch.optim.SGD` for ordinary tensors plus the fused update for fused slot layers.

    The fused layers' scores form their own parameter group, so schedulers set their learning
    rate as for any group, and their momentum buffers live in `self.state` like SGD's.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        layers: list[SlotMixin],
        *,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        groups = [{"params": list(params)}]
        if layers:
            groups.append({"params": [layer.scores for layer in layers], "fused": True})
        groups = [group for group in groups if group["params"]]
        super().__init__(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.fused = {id(layer.scores): layer for layer in layers}

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        loss = super().step(closure)
        for group in self.param_groups:
            if not group.get("fused"):
                continue
            for scores in group["params"]:
                layer = self.fused[id(scores)]
                if layer.cached_weight is None or layer.cached_weight.grad is None:
                    continue
                state = self.state[scores]
                state["momentum_buffer"] = fused_update(
                    layer,
                    state.get("momentum_buffer"),
                    group["lr"],
                    group["momentum"],
                    group["weight_decay"],
                )
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for layer in self.fused.values():
            if layer.cached_weight is not None:
                layer.cached_weight.grad = None
