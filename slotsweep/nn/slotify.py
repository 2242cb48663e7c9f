"""Any model as a slot machine (or another registered family): its linear and conv layers
replaced by the family's layers of the same shape."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn

from slotsweep.nn.family import LayerFactory, LayerSpec

Keep = Callable[[str, nn.Module], bool]
REPLACED = (nn.Linear, nn.Conv2d)


def replaceable(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, layer) of every `nn.Linear` and `nn.Conv2d` of `module`, in definition
    order (a layer reachable twice counts once), except attention's output projections:
    `nn.MultiheadAttention` reads their weight itself rather than calling them."""
    inside_attention = {
        id(child)
        for m in module.modules()
        if isinstance(m, nn.MultiheadAttention)
        for child in m.children()
    }
    return [
        (name, m)
        for name, m in module.named_modules()
        if isinstance(m, REPLACED) and id(m) not in inside_attention
    ]


def _keep_filter(keep: Iterable[str] | Keep, names: list[str]) -> Keep:
    """A filter from `keep`: a callable, or names of layers plus `first` and `last`."""
    if callable(keep):
        return keep
    wanted = set(keep)
    aliases = {"first": names[:1], "last": names[-1:]}
    unknown = wanted - set(names) - set(aliases)
    if unknown:
        raise ValueError(f"keep names no linear or conv layer: {sorted(unknown)}")
    kept = {name for entry in wanted for name in aliases.get(entry, [entry])}
    return lambda name, _module: name in kept


def slotify(
    module: nn.Module,
    method: str = "slot",
    k: int = 8,
    *,
    keep: Iterable[str] | Keep = (),
    seed: int = 0,
    **settings: object,
) -> nn.Module:
    """Replaces, in place, every `nn.Linear` and `nn.Conv2d` of `module` by the layer of the
    registered family `method` with the same shape (channels, kernel, stride, padding,
    dilation, groups), and returns `module`.

    `settings` are the other fields of `LayerSpec` (`selection`, `sharing`, `score_lambda`,
    `recipe`, `keep_fraction`, `fused`, ...). Layer i draws from seeds derived from (`seed`, i),
    as the built-in architectures' layers do. `keep` leaves layers as they are: a filter
    `(name, layer) -> bool`, or qualified names and the aliases `first` and `last` (the first and
    last linear or conv layer in definition order: `keep=("first", "last")` keeps the stem and
    the classifier dense). The replacements are bias-free, as the paper's layers are: a replaced
    layer's bias is dropped (most sit before a normalisation that has its own).
    """
    factory = LayerFactory(LayerSpec(method=method, k=k, seed=seed, **settings))
    return replace_layers(module, factory, keep)


def replace_layers(
    module: nn.Module, factory: LayerFactory, keep: Iterable[str] | Keep = ()
) -> nn.Module:
    """`slotify` with the layers of `factory` (an architecture's builder has one)."""
    found = replaceable(module)
    kept = _keep_filter(keep, [name for name, _ in found])
    replacements = {
        id(layer): factory.like(layer) for name, layer in found if not kept(name, layer)
    }
    for parent in module.modules():
        for name, child in parent.named_children():
            if id(child) in replacements:
                setattr(parent, name, replacements[id(child)])
    return module
