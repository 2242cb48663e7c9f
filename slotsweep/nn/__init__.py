"""Layers of slotsweep: slot machines, the weight-trained baseline and edge-popup."""

from slotsweep.nn.dense import DenseConv2d, DenseLinear
from slotsweep.nn.edge_popup import EdgePopupConv2d, EdgePopupLinear
from slotsweep.nn.family import LayerFactory, LayerSpec
from slotsweep.nn.slot import SlotConv2d, SlotLinear, SlotMixin

__all__ = [
    "DenseConv2d", "DenseLinear", "EdgePopupConv2d", "EdgePopupLinear", "LayerFactory",
    "LayerSpec", "SlotConv2d", "SlotLinear", "SlotMixin",
]
