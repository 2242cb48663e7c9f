"""The fused slot update gives the same selections, gradients and scores as autograd + SGD."""

import pytest
import torch
import torch.nn.functional as F

from slotsweep.models import create_model
from slotsweep.nn import LayerSpec, SlotMixin, native
from slotsweep.nn.fused import fused_layers
from slotsweep.train.optim import build_optimizer


def _pair(arch, sharing, k):
    channels, size = (1, 28) if arch == "lenet_300_100" else (3, 32)

    def build(fused):
        return create_model(
            arch,
            LayerSpec(k=k, sharing=sharing, seed=4, fused=fused),
            in_channels=channels,
            image_size=size,
            dropout=0.0,
        )

    return build(False), build(True), (channels, size)


@pytest.mark.parametrize("native_kernel", [True, False], ids=["native", "torch"])
@pytest.mark.parametrize(
    "arch,sharing,k",
    [
        ("lenet_300_100", "none", 8),
        ("lenet_300_100", "layer", 3),
        ("lenet_300_100", "global", 16),
        ("conv2", "none", 4),
    ],
)
def test_fused_steps_match_reference(monkeypatch, arch, sharing, k, native_kernel):
    """With the native kernel, and with the PyTorch update it falls back to."""
    if native_kernel and not native.available():
        pytest.skip(f"native kernel unavailable: {native.unavailable_reason()}")
    if not native_kernel:
        monkeypatch.setenv("SLOTSWEEP_NATIVE", "0")
    reference, fused, (channels, size) = _pair(arch, sharing, k)
    for ref_layer, fused_layer in zip(_slots(reference), fused_layers(fused), strict=True):
        assert torch.equal(fused_layer.candidates(), ref_layer.candidates())
    optimizers = [
        build_optimizer(m, lr=0.5, momentum=0.9, weight_decay=1e-3) for m in (reference, fused)
    ]
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(8, channels, size, size, generator=generator)
        y = torch.randint(0, 10, (8,), generator=generator)
        for model, optimizer in zip((reference, fused), optimizers, strict=True):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
        for ref_layer, fused_layer in zip(_slots(reference), fused_layers(fused), strict=True):
            implied = fused_layer.cached_weight.grad.unsqueeze(-1) * fused_layer.candidates()
            torch.testing.assert_close(implied, ref_layer.scores.grad, rtol=1e-5, atol=1e-7)
        for optimizer in optimizers:
            optimizer.step()
        for ref_layer, fused_layer in zip(_slots(reference), fused_layers(fused), strict=True):
            torch.testing.assert_close(fused_layer.scores, ref_layer.scores, rtol=1e-5, atol=1e-7)
            assert torch.equal(fused_layer.selection_indices(), ref_layer.selection_indices())
            assert torch.equal(fused_layer.cached_weight.detach(), ref_layer.selected_weight())


def _slots(model):
    return [m for m in model.modules() if isinstance(m, SlotMixin)]


def test_fused_is_greedy_only():
    with pytest.raises(ValueError, match="greedy"):
        create_model("lenet_300_100", LayerSpec(selection="probabilistic", fused=True))
