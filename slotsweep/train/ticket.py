"""The trained network as a file: a slot machine's compact ticket, or a baseline's weights.

A ticket is the bytes `model_size_bytes` counts, in the same order, with no header:
1. per selecting layer (slot or edge-popup), in definition order: the 8-byte seed that
   regenerates its values (slot) or frozen weights (edge-popup), uint64 little-endian, then its
   choices packed most significant bit first: ceil(log2 K) bits per connection (slot; K=1 needs
   none) or 1 bit (edge-popup's mask), padded to a whole byte;
2. every other parameter (a dense network's weights; biases, normalisation), float32 raw, in
   `named_parameters` order;
3. batch-norm running means and variances, in `named_buffers` order.
So the file's size is `model_size_bytes` exactly. What a ticket does not hold (architecture, K,
method, recipe, the trial seed) is the recipe in the run's `trial_config.json`: the network is
rebuilt from it, the stored seeds are checked against the rebuilt layers, and the choices and
weights are loaded into it.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from torch import nn

from slotsweep.nn.slot import SlotMixin
from slotsweep.train.metrics import (
    SEED_BYTES,
    index_bits,
    pack_indices,
    selecting_layers,
    unpack_indices,
)

_STATS = ("running_mean", "running_var")


class TicketError(ValueError):
    """A ticket that does not fit the network its recipe builds."""


def _bits(layer: nn.Module) -> int:
    return index_bits(layer.k) if isinstance(layer, SlotMixin) else 1


def _plain_tensors(model: nn.Module) -> list[torch.Tensor]:
    """Parameters outside the selecting layers, then the normalisation statistics."""
    selecting = {id(p) for layer in selecting_layers(model) for p in layer.parameters()}
    params = [p for p in model.parameters() if id(p) not in selecting]
    stats = [b for name, b in model.named_buffers() if name.endswith(_STATS)]
    return params + stats


def encode_ticket(model: nn.Module) -> bytes:
    """The model's inference state as ticket bytes (see the module docstring)."""
    out = io.BytesIO()
    for layer in selecting_layers(model):
        out.write(int(layer.values_seed).to_bytes(SEED_BYTES, "little"))
        out.write(pack_indices(layer.selection_state(), _bits(layer)))
    for tensor in _plain_tensors(model):
        out.write(tensor.detach().cpu().contiguous().numpy().tobytes())
    return out.getvalue()


def load_ticket(model: nn.Module, ticket: bytes) -> None:
    """Loads a ticket's choices and weights into `model`, freshly built from the same recipe."""
    view, offset = memoryview(ticket), 0

    def take(count: int) -> memoryview:
        nonlocal offset
        if offset + count > len(view):
            raise TicketError(f"ticket too short: {len(view)} bytes for this network")
        offset += count
        return view[offset - count : offset]

    with torch.no_grad():
        for index, layer in enumerate(selecting_layers(model)):
            seed = int.from_bytes(take(SEED_BYTES), "little")
            if seed != layer.values_seed:
                raise TicketError(
                    f"layer {index}: the ticket's seed {seed} is not the recipe's "
                    f"{layer.values_seed}: the ticket belongs to another network"
                )
            count, bits = math.prod(layer.weight_shape), _bits(layer)
            choices = unpack_indices(bytes(take(math.ceil(count * bits / 8))), bits, count)
            _choose(layer, choices.view(layer.weight_shape))
        for tensor in _plain_tensors(model):
            raw = np.frombuffer(take(tensor.nbytes), dtype=tensor.numpy(force=True).dtype)
            tensor.copy_(torch.from_numpy(raw.copy()).view_as(tensor))
    if offset != len(view):
        raise TicketError(f"ticket has {len(view) - offset} bytes more than this network holds")


def _choose(layer: nn.Module, choices: torch.Tensor) -> None:
    """Scores whose argmax (slot) or top fraction (edge-popup) is exactly `choices`."""
    if isinstance(layer, SlotMixin):
        scores = torch.nn.functional.one_hot(choices, layer.k).to(layer.scores.dtype)
        layer.scores.copy_(scores)
        if layer.fused:
            layer.refresh_cached_weight()
        return
    kept = max(1, round(layer.keep_fraction * choices.numel()))
    if int(choices.sum()) != kept:
        raise TicketError(
            f"an edge-popup mask keeps {int(choices.sum())} connections, the recipe keeps {kept}"
        )
    layer.scores.copy_(choices.to(layer.scores.dtype))
