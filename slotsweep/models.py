"""The paper's architectures, each defined once and built for any layer family."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from slotsweep.nn.dense import conv_options
from slotsweep.nn.family import LayerFactory, LayerSpec
from slotsweep.nn.slotify import replace_layers, replaceable
from slotsweep.registry import ARCHS, PADDINGS
from slotsweep.seeding import seed_torch

ModelBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture: its builder and the defaults a trial resolves from it."""

    builder: ModelBuilder
    default_dropout: float = 0.0  # the `dropout` trial key's default for this arch


def register_model(builder: ModelBuilder | None = None, *, default_dropout: float = 0.0):
    """Adds an architecture under its function name (`@register_model` or
    `@register_model(default_dropout=0.5)`): a new `arch` trial key value, the one place to
    declare it. The builder gets a `LayerFactory` and the keyword arguments of `create_model`."""

    def add(function: ModelBuilder) -> ModelBuilder:
        ARCHS.register(function.__name__, ArchSpec(function, default_dropout))
        return function

    return add if builder is None else add(builder)


def model_names() -> list[str]:
    """Names of every registered architecture."""
    return sorted(ARCHS.names())


def arch_spec(arch: str) -> ArchSpec:
    """The registered architecture `arch` (ValueError naming the known ones otherwise)."""
    return ARCHS.get(arch)


def create_model(
    arch: str,
    spec: LayerSpec,
    *,
    in_channels: int = 1,
    image_size: int = 28,
    num_classes: int = 10,
    padding: str = "authors",
    dropout: float | None = None,
) -> nn.Module:
    """Builds `arch` with layers of the family `spec` describes (`dropout` None: the arch's)."""
    entry = arch_spec(arch)
    PADDINGS.get(padding)
    return entry.builder(
        LayerFactory(spec),
        in_channels=in_channels,
        image_size=image_size,
        num_classes=num_classes,
        padding=padding,
        dropout=entry.default_dropout if dropout is None else dropout,
    )


@register_model
def lenet_300_100(
    layers: LayerFactory,
    *,
    in_channels: int,
    image_size: int,
    num_classes: int,
    padding: str,
    dropout: float,
) -> nn.Module:
    """784-300-100-10 MLP (inputs flattened, so any image size works)."""
    inputs = in_channels * image_size * image_size
    return nn.Sequential(
        nn.Flatten(),
        layers.linear(inputs, 300),
        nn.ReLU(),
        layers.linear(300, 100),
        nn.ReLU(),
        layers.linear(100, num_classes),
    )


class ChannelsLast(nn.Module):
    """Hands the convolutions NHWC tensors (the same values, another memory layout).

    oneDNN's convolutions and pools run faster on them: a dense CONV-4 training step (3x32x32,
    batch 32, 2 threads) took 35 ms against 43 with this module swapped for `nn.Identity`, timed
    side by side as `bench/bench_step.py` times its variants. Later layers keep the layout, and
    `nn.Flatten` still orders features as (C, H, W).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.stride(1) == 1:  # channels innermost already
            return x
        # Not x.contiguous(memory_format=...): a 1-channel NCHW tensor already counts as
        # channels-last there and comes back unchanged, and the convolutions then stay NCHW.
        return torch.empty_like(x, memory_format=torch.channels_last).copy_(x)


def _conv_stack(
    layers: LayerFactory,
    in_channels: int,
    image_size: int,
    plan: list[tuple[int, int] | str],
    batch_norm: bool,
) -> tuple[list[nn.Module], int, int]:
    """Convs ((channels, padding) entries) and 2x2 max-pools ('M'); returns modules, C, size."""
    modules: list[nn.Module] = [ChannelsLast()]
    channels, size = in_channels, image_size
    for entry in plan:
        if entry == "M":
            modules.append(nn.MaxPool2d(2))
            size //= 2
            continue
        out_channels, pad = entry
        modules.append(layers.conv(channels, out_channels, pad))
        if batch_norm:
            modules.append(nn.BatchNorm2d(out_channels, affine=False))
        modules.append(nn.ReLU())
        channels, size = out_channels, size + 2 * pad - 2
    return modules, channels, size


def _conv_x(
    layers: LayerFactory,
    widths: list[int],
    unpadded: int,
    in_channels: int,
    image_size: int,
    num_classes: int,
    padding: str,
    dropout: float,
) -> nn.Module:
    """CONV-2/4/6: pairs of 3x3 convs with a pool after each pair, then 256-256-10 with dropout."""
    plan: list[tuple[int, int] | str] = []
    for index, width in enumerate(widths):
        pad = 1 if padding == "same" or index >= unpadded else 0
        plan.append((width, pad))
        if index % 2 == 1:
            plan.append("M")
    features, channels, size = _conv_stack(layers, in_channels, image_size, plan, False)
    head = [
        nn.Flatten(),
        nn.Dropout(dropout),
        layers.linear(channels * size * size, 256),
        nn.ReLU(),
        nn.Dropout(dropout),
        layers.linear(256, 256),
        nn.ReLU(),
        layers.linear(256, num_classes),
    ]
    return nn.Sequential(*features, *head)


@register_model(default_dropout=0.5)
def conv2(layers: LayerFactory, **kw) -> nn.Module:
    """CONV-2: 64, 64, pool; 256, 256, 10."""
    return _conv_x(layers, [64, 64], 2, **kw)


@register_model(default_dropout=0.5)
def conv4(layers: LayerFactory, **kw) -> nn.Module:
    """CONV-4: 64, 64, pool, 128, 128, pool; 256, 256, 10."""
    return _conv_x(layers, [64, 64, 128, 128], 4, **kw)


@register_model(default_dropout=0.5)
def conv6(layers: LayerFactory, **kw) -> nn.Module:
    """CONV-6: 64, 64, pool, 128, 128, pool, 256, 256, pool; the authors pad only the last two."""
    return _conv_x(layers, [64, 64, 128, 128, 256, 256], 4, **kw)


@register_model
def vgg19(
    layers: LayerFactory,
    *,
    in_channels: int,
    image_size: int,
    num_classes: int,
    padding: str,
    dropout: float,
) -> nn.Module:
    """VGG-19 with non-affine BatchNorm, padded convs, global average pool and a 512-10 head."""
    widths = [64, 64, "M", 128, 128, "M", *[256] * 4, "M", *[512] * 4, "M", *[512] * 4]
    plan = [w if w == "M" else (w, 1) for w in widths]
    features, channels, _ = _conv_stack(layers, in_channels, image_size, plan, True)
    return nn.Sequential(
        *features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), layers.linear(channels, num_classes)
    )


# --- torchvision's classification models: `arch: torchvision/NAME` ---

TORCHVISION = "torchvision"
# builders that need more than the class count to fit small inputs or the trainer's loss
_TORCHVISION_OPTIONS: dict[str, Callable[[int], dict[str, object]]] = {
    "googlenet": lambda size: {"aux_logits": False, "init_weights": True},
    "inception_v3": lambda size: {"aux_logits": False, "init_weights": True},
    **{
        name: lambda size: {"image_size": size}
        for name in ("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14")
    },
}


@functools.cache
def torchvision_names() -> tuple[str, ...]:
    """The classification models torchvision builds (`torchvision.models.list_models`)."""
    from torchvision import models

    return tuple(models.list_models(module=models))


def _torchvision_arch(name: str) -> ArchSpec:
    """The `ARCHS` entry of `torchvision/NAME` (ValueError for a name torchvision lacks)."""
    try:
        names = torchvision_names()
    except ImportError as error:
        raise ValueError(f"arch {TORCHVISION}/{name} needs torchvision: {error}") from None
    if name not in names:
        raise ValueError(
            f"unknown {TORCHVISION} classification model {name!r}; choose one of {', '.join(names)}"
        )
    return ArchSpec(functools.partial(_torchvision_model, name))


ARCHS.register_prefix(TORCHVISION, _torchvision_arch)


def _torchvision_model(
    name: str,
    layers: LayerFactory,
    *,
    in_channels: int,
    image_size: int,
    num_classes: int,
    padding: str,
    dropout: float,
) -> nn.Module:
    """torchvision's `name`, untrained, for `num_classes` classes and `in_channels` x
    `image_size`^2 inputs, with every linear and conv layer of `layers`' family (`slotify`).
    `padding` and `dropout` are CONV-x settings: the model keeps its own. Whatever is left of
    torchvision's own initialisation (normalisation, layers a family keeps) draws from the
    trial's seed."""
    from torchvision import models

    options = _TORCHVISION_OPTIONS.get(name, lambda size: {})(image_size)
    with torch.random.fork_rng(devices=[]):  # the caller's global generator stays as it was
        seed_torch(layers.spec.seed)
        model = models.get_model(name, weights=None, num_classes=num_classes, **options)
    _adapt_input(model, in_channels)
    _check_input(model, f"{TORCHVISION}/{name}", in_channels, image_size)
    return replace_layers(model, layers)


def _adapt_input(model: nn.Module, in_channels: int) -> None:
    """The first convolution takes `in_channels` channels (torchvision's take 3)."""
    convs = [(n, m) for n, m in replaceable(model) if isinstance(m, nn.Conv2d)]
    if not convs or convs[0][1].in_channels == in_channels:
        return
    name, first = convs[0]
    if first.groups != 1:
        raise ValueError(f"the first convolution {name} is grouped: cannot take {in_channels}")
    parent, _, attribute = name.rpartition(".")
    options = conv_options(first)  # its stride, padding, dilation (groups is 1)
    adapted = nn.Conv2d(
        in_channels, first.out_channels, first.kernel_size, bias=first.bias is not None, **options
    )
    setattr(model.get_submodule(parent), attribute, adapted)


def _check_input(model: nn.Module, arch: str, in_channels: int, image_size: int) -> None:
    """A clear error now for a model that cannot take these inputs (too small for its
    pooling), rather than a shape error in the first training step."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, image_size, image_size))
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"{arch} does not take {in_channels}x{image_size}x{image_size} inputs: {error}"
        ) from None
    finally:
        model.train(was_training)
