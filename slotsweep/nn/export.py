"""The selected network as an ordinary one: every selecting layer replaced by a dense layer."""

from __future__ import annotations

import copy

from torch import nn

from slotsweep.nn.family import SelectingLayer


def to_dense(model: nn.Module) -> nn.Module:
    """A copy of `model` in which every slot and edge-popup layer is the bias-free dense layer
    holding the weight it selects; the copy computes what `model` computes in eval mode."""
    exported = copy.deepcopy(model)
    for parent in list(exported.modules()):
        for name, child in parent.named_children():
            if isinstance(child, SelectingLayer):
                setattr(parent, name, child.as_dense())
    return exported
