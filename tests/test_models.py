"""Every architecture builds for every layer family, with the paper's weight counts."""

import pytest
import torch

from slotsweep.models import create_model, model_names
from slotsweep.nn import LayerSpec, SlotMixin

PAPER_WEIGHTS = {
    "lenet_300_100": 266_200,
    "conv2": 3_317_952,
    "conv4": 1_147_072,
    "conv6": 1_474_752,
    "vgg19": 20_024_000,
}


def _inputs(arch):
    return (1, 28) if arch == "lenet_300_100" else (3, 32)


def _connections(model):
    return (
        sum(p.numel() for p in model.parameters() if p.dim() > 1)
        if not any(isinstance(m, SlotMixin) for m in model.modules())
        else sum(m.scores.numel() // m.k for m in model.modules() if isinstance(m, SlotMixin))
    )


def test_registry_has_every_paper_arch():
    assert set(model_names()) == set(PAPER_WEIGHTS)


@pytest.mark.parametrize("arch", sorted(PAPER_WEIGHTS))
def test_weight_counts_match_paper(arch):
    channels, size = _inputs(arch)
    dense = create_model(arch, LayerSpec(method="dense"), in_channels=channels, image_size=size)
    assert _connections(dense) == PAPER_WEIGHTS[arch]


@pytest.mark.parametrize("arch", ["lenet_300_100", "conv2", "conv4", "conv6"])
@pytest.mark.parametrize("method", ["slot", "dense", "edge_popup"])
def test_every_family_builds_and_runs(arch, method):
    channels, size = _inputs(arch)
    model = create_model(arch, LayerSpec(method=method, k=2), in_channels=channels, image_size=size)
    out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_same_padding_changes_conv4_size():
    authors = create_model("conv4", LayerSpec(method="dense"), in_channels=3, image_size=32)
    same = create_model(
        "conv4", LayerSpec(method="dense"), in_channels=3, image_size=32, padding="same"
    )
    # 'same' keeps 32 -> 16 -> 8, so the first FC layer sees 128*8*8 inputs instead of 128*5*5
    assert _connections(same) - _connections(authors) == 128 * (64 - 25) * 256


def test_unknown_arch_is_refused():
    with pytest.raises(ValueError, match="unknown arch"):
        create_model("resnet", LayerSpec())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("method", ["dense", "slot"])
def test_conv_nets_compute_in_channels_last_with_the_same_result(method, channels):
    model = create_model(
        "conv2", LayerSpec(method=method, k=4), in_channels=channels, image_size=32, dropout=0.0
    )
    convs = [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d) or (isinstance(m, SlotMixin) and len(m.weight_shape) == 4)
    ]
    channel_strides = []
    for conv in convs:
        conv.register_forward_pre_hook(lambda _, args: channel_strides.append(args[0].stride(1)))
    x = torch.randn(4, channels, 32, 32)
    out = model(x)
    assert channel_strides == [1] * len(convs)  # channels innermost: NHWC in memory
    nchw = torch.nn.Sequential(*list(model)[1:])  # the same network without the layout change
    torch.testing.assert_close(out, nchw(x), rtol=1e-4, atol=1e-5)
