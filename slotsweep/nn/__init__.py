"""Layers of slotsweep: slot machines, the weight-trained baseline and edge-popup.

Importing this package registers the built-in layer families (`registry.FAMILIES`), in the
order the `method` trial key lists them; a new family is a `LayerFamily` subclass passed to
`register_family` (a decorator), in a module imported here.
"""

from slotsweep.nn.dense import DenseConv2d, DenseFamily, DenseLinear
from slotsweep.nn.edge_popup import EdgePopupConv2d, EdgePopupFamily, EdgePopupLinear
from slotsweep.nn.export import to_dense
from slotsweep.nn.family import (
    LayerFactory,
    LayerFamily,
    LayerSpec,
    SelectingLayer,
    family_class,
    register_family,
)
from slotsweep.nn.slot import SlotConv2d, SlotFamily, SlotLinear, SlotMixin
from slotsweep.nn.slotify import slotify

for _family in (SlotFamily, DenseFamily, EdgePopupFamily):
    register_family(_family)

__all__ = [
    "DenseConv2d",
    "DenseFamily",
    "DenseLinear",
    "EdgePopupConv2d",
    "EdgePopupFamily",
    "EdgePopupLinear",
    "LayerFactory",
    "LayerFamily",
    "LayerSpec",
    "SelectingLayer",
    "SlotConv2d",
    "SlotFamily",
    "SlotLinear",
    "SlotMixin",
    "family_class",
    "register_family",
    "slotify",
    "to_dense",
]
