"""`slotify` on any model, and `arch: torchvision/NAME` in trials (quick checks; the family
contract on resnet18 and mobilenet_v3_small is in tests/test_families.py, slow)."""

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from slotsweep.config import TrialConfig
from slotsweep.data import BatchLoader
from slotsweep.models import create_model
from slotsweep.nn import (
    DenseConv2d,
    EdgePopupConv2d,
    LayerSpec,
    SlotConv2d,
    SlotLinear,
    slotify,
    to_dense,
)
from slotsweep.nn.dense import conv_options
from slotsweep.train.build import build_model, evaluate, trial_data
from slotsweep.train.metrics import selecting_layers
from slotsweep.train.ticket import encode_ticket, load_ticket
from slotsweep.train.trainer import train_trial


class Odd(nn.Module):
    """Every conv geometry torchvision uses: stride, non-square kernel, dilation, groups, bias."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=True)
        self.body = nn.Sequential(
            nn.Conv2d(8, 8, (3, 1), padding=(1, 0), groups=8),  # depthwise
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 4, 3, padding=2, dilation=2, groups=2),
        )
        self.head = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x)).flatten(1))


def _x() -> torch.Tensor:
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", ["slot", "dense", "edge_popup"])
def test_every_layer_is_replaced_with_its_shape_and_the_export_computes_the_same(method):
    model = slotify(Odd(), method, k=3, seed=2)
    assert not [m for m in model.modules() if type(m) in (nn.Conv2d, nn.Linear)]
    shape = getattr(model.body[0], "weight_shape", None) or model.body[0].weight.shape
    assert model.body[0].groups == 8 and tuple(shape) == (8, 1, 3, 1)  # depthwise
    assert model.body[3].dilation in (2, (2, 2))
    model.eval()
    with torch.no_grad():
        out = model(_x())
        assert out.shape == (2, 5)
        dense = to_dense(model).eval()
        torch.testing.assert_close(dense(_x()), out, rtol=1e-5, atol=1e-6)
    assert not selecting_layers(dense)


def test_keep_filters_leave_layers_dense():
    kept = slotify(Odd(), k=2, keep=("first", "last"))
    assert type(kept.stem) is nn.Conv2d and type(kept.head) is nn.Linear
    assert isinstance(kept.body[0], SlotConv2d)
    named = slotify(Odd(), k=2, keep=["body.3"])
    assert type(named.body[3]) is nn.Conv2d and isinstance(named.head, SlotLinear)
    chosen = slotify(Odd(), k=2, keep=lambda name, layer: getattr(layer, "groups", 1) > 1)
    assert type(chosen.body[0]) is nn.Conv2d and isinstance(chosen.stem, SlotConv2d)
    with pytest.raises(ValueError, match="body.9"):
        slotify(Odd(), keep=["body.9"])


def test_same_seed_same_layers_and_layers_follow_the_model_order():
    a, b = slotify(Odd(), k=4, seed=1), slotify(Odd(), k=4, seed=1)
    other = slotify(Odd(), k=4, seed=2)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not torch.equal(a.stem.values, other.stem.values)
    assert a.stem.seed != a.body[0].seed  # layer i draws from (seed, i)


def test_grouped_slot_conv_gradient_follows_the_paper():
    """scores.grad[..., k] = dL/dW * W_k, dL/dW from a plain grouped conv holding the weight."""
    layer = SlotConv2d(6, 4, 3, 3, groups=2, dilation=2, padding=2)
    x = torch.randn(2, 6, 7, 7)
    layer(x).square().sum().div(2).backward()
    weight = layer.selected_weight().requires_grad_(True)
    F.conv2d(x, weight, **conv_options(layer)).square().sum().div(2).backward()
    expected = weight.grad.unsqueeze(-1) * layer.candidates()
    torch.testing.assert_close(layer.scores.grad, expected, rtol=1e-5, atol=1e-7)


def test_families_build_grouped_convs():
    assert EdgePopupConv2d(4, 6, 3, groups=2).weight_shape == (6, 2, 3, 3)
    assert DenseConv2d(4, 6, (1, 3), groups=2).weight.shape == (6, 2, 1, 3)
    with pytest.raises(ValueError, match="groups"):
        SlotConv2d(4, 6, 3, 2, groups=4)


def test_torchvision_archs_are_validated_with_a_clear_error():
    assert TrialConfig(arch="torchvision/resnet18").arch == "torchvision/resnet18"
    with pytest.raises(ValidationError, match="unknown torchvision classification model 'nope'"):
        TrialConfig(arch="torchvision/nope")
    with pytest.raises(ValidationError, match="torchvision/NAME"):
        TrialConfig(arch="resnet18")
    with pytest.raises(ValueError, match="does not take 3x8x8 inputs"):
        create_model("torchvision/squeezenet1_1", LayerSpec(k=2), in_channels=3, image_size=8)


def test_a_torchvision_trial_trains_and_its_ticket_and_export_evaluate_alike(tmp_path):
    """shufflenet (depthwise convs) on 1x28x28 images: the first conv takes one channel."""
    config = TrialConfig(
        arch="torchvision/shufflenet_v2_x0_5",
        dataset="synthetic",
        k=2,
        epochs=1,
        batch_size=64,
        train_subset=128,
        device="cpu",
        num_threads=1,
    ).resolved()
    result = train_trial(config)
    assert result.impl.startswith("fused") and 0 <= result.test_accuracy <= 1
    data = trial_data(config)
    model = build_model(config, data, fused=False)
    load_ticket(model, result.ticket)
    assert encode_ticket(model) == result.ticket
    assert len(result.ticket) == result.model_size_bytes
    loader = BatchLoader(data.test, 256, shuffle=False, mean=data.mean, std=data.std)
    accuracy = evaluate(model, loader)
    assert accuracy == pytest.approx(result.test_accuracy)
    assert evaluate(to_dense(model), loader) == accuracy
