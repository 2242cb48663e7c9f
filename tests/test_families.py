"""The contract every registered layer family passes, on a linear and a conv network, and on
two torchvision models (`arch: torchvision/NAME`, their layers replaced by `slotify`).

Each case is a family with settings; a new family registered in `slotsweep.nn` is run here too
(its registered name with default settings), so it cannot skip the contract. The torchvision
models run the registered families and the fused update (`TORCHVISION_CASES`); they are slow
(resnet18 holds 11 M connections; tests/test_slotify.py has the quick checks).
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from slotsweep import registry
from slotsweep.models import create_model
from slotsweep.nn import LayerSpec, SelectingLayer, to_dense
from slotsweep.nn.dense import conv_options
from slotsweep.train.metrics import memory_state_bytes, model_size_bytes, selecting_layers
from slotsweep.train.optim import build_optimizer

VARIANTS = {
    "slot-greedy": LayerSpec(method="slot", k=4),
    "slot-probabilistic": LayerSpec(method="slot", k=4, selection="probabilistic"),
    "slot-fused": LayerSpec(method="slot", k=4, fused=True),
    "slot-layer-shared": LayerSpec(method="slot", k=4, sharing="layer"),
    "slot-global-shared": LayerSpec(method="slot", k=4, sharing="global"),
}
CASES = {**VARIANTS, **{name: LayerSpec(method=name, k=4) for name in registry.FAMILIES.names()}}
TORCHVISION = {
    "mobilenet": ("torchvision/mobilenet_v3_small", 3, 32),
    "resnet18": ("torchvision/resnet18", 3, 32),
}
NETWORKS = {"mlp": ("lenet_300_100", 1, 28), "conv": ("conv2", 3, 10), **TORCHVISION}
# what each torchvision model runs (the suite's time: resnet18 holds 11 M connections)
TORCHVISION_CASES = {
    "mobilenet": ("slot-fused", *registry.FAMILIES.names()),
    "resnet18": ("slot", "edge_popup"),
}


def _build(case: str, network: str, seed: int = 0) -> nn.Module:
    arch, channels, size = NETWORKS[network]
    spec = CASES[case]
    spec = LayerSpec(**{**spec.__dict__, "seed": seed})
    return create_model(arch, spec, in_channels=channels, image_size=size, dropout=0.0)


def _batch(network: str, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    _, channels, size = NETWORKS[network]
    generator = torch.Generator().manual_seed(1)
    return (
        torch.randn(n, channels, size, size, generator=generator),
        torch.randint(0, 10, (n,), generator=generator),
    )


def _step(model: nn.Module, network: str) -> torch.optim.Optimizer:
    optimizer = build_optimizer(model, 0.1, 0.9, 1e-4)
    x, y = _batch(network)
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    return optimizer


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _pairs(cases):
    """(case, network) parameters: every case on the paper's networks, the torchvision cases
    on torchvision's (slow)."""
    for network in NETWORKS:
        for case in cases:
            if network in TORCHVISION and case not in TORCHVISION_CASES[network]:
                continue
            marks = [pytest.mark.slow] if network in TORCHVISION else []
            yield pytest.param(case, network, marks=marks, id=f"{case}-{network}")


every_case = pytest.mark.parametrize("case,network", list(_pairs(CASES)))


@every_case
def test_same_seed_same_network_and_training(case, network):
    a, b, other = _build(case, network), _build(case, network), _build(case, network, seed=1)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert any(not torch.equal(v, other.state_dict()[k]) for k, v in a.state_dict().items())
    torch.manual_seed(0)  # the draws the families leave to torch's global generator
    _step(a, network)
    torch.manual_seed(0)
    _step(b, network)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def _per_connection_bytes(case: str, layer: nn.Module) -> float:
    """Training state per connection, counted by hand from the family's design (float32)."""
    spec, k = CASES[case], CASES[case].k
    if spec.method == "dense":
        return 3 * 4  # weight, gradient, momentum
    if spec.method == "edge_popup":
        return 4 * 4  # frozen weight, score, its gradient, momentum
    values = k if spec.sharing == "none" else 0  # shared values are per layer, added apart
    if spec.fused:  # scores, momentum, the cached weight and its gradient; no score gradient
        return 4 * (values + 2 * k + 2)
    return 4 * (values + 3 * k)


@every_case
def test_state_and_model_size_match_a_count_by_hand(case, network):
    if CASES[case].method not in ("slot", "dense", "edge_popup"):
        pytest.skip("no count by hand for a family registered elsewhere")
    model = _build(case, network)
    optimizer = _step(model, network)
    layers = [
        m
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d)) or isinstance(m, SelectingLayer)
    ]
    connections = [math.prod(getattr(m, "weight_shape", None) or m.weight.shape) for m in layers]
    expected = sum(
        _per_connection_bytes(case, m) * n for m, n in zip(layers, connections, strict=True)
    )
    if CASES[case].method == "slot" and CASES[case].sharing != "none":
        expected += 4 * CASES[case].k * len(layers)  # K values per layer (global: scaled copies)
    norms = [m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    # torchvision's batch norms: affine weight and bias (each with gradient and momentum), the
    # running mean and variance, and an int64 batch count
    expected += sum(2 * 3 * 4 * c + 2 * 4 * c + 8 for c in norms)
    assert memory_state_bytes(model, optimizer) == expected
    if CASES[case].method == "dense":
        size = 4 * sum(connections)
    else:
        bits = 2 if CASES[case].method == "slot" else 1  # ceil(log2 4) or a mask
        size = sum(math.ceil(n * bits / 8) + 8 for n in connections)
    size += sum(4 * 4 * c for c in norms)  # affine weight and bias, running mean and variance
    assert model_size_bytes(model) == size


@every_case
def test_export_to_a_dense_network_computes_the_same(case, network):
    model = _build(case, network)
    _step(model, network)
    model.eval()
    dense = to_dense(model).eval()
    assert not selecting_layers(dense)
    assert all(
        isinstance(m, (nn.Linear, nn.Conv2d, nn.BatchNorm2d))  # torchvision's norms are affine
        for m in dense.modules()
        if any(True for _ in m.parameters(recurse=False))
    )
    x, _ = _batch(network, 8)
    with torch.no_grad():
        torch.testing.assert_close(dense(x), model(x), rtol=1e-5, atol=1e-6)


@every_case
def test_device_moves_carry_every_tensor(case, network):
    """`.to(device)` moves every tensor a layer holds, and a later forward follows: on CUDA
    where there is one, else on PyTorch's `meta` device (shapes without data)."""
    model = _build(case, network)
    _step(model, network)
    device = torch.device("cuda" if torch.cuda.is_available() else "meta")
    moved = copy.deepcopy(model).to(device).eval()
    assert {t.device for t in [*moved.parameters(), *moved.buffers()]} == {device}
    x, _ = _batch(network)
    assert moved(x.to(device)).shape == (4, 10)
    for layer in selecting_layers(moved):
        cached = getattr(layer, "cached_weight", None)
        assert cached is None or cached.device == device


def _dense_gradient(layer: nn.Module, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dL/dW of a plain layer holding `weight`, for the loss sum(out**2) / 2."""
    weight = weight.detach().clone().requires_grad_(True)
    if weight.dim() == 2:
        out = F.linear(x, weight)
    else:
        out = F.conv2d(x, weight, **conv_options(layer))
    (out.square().sum() / 2).backward()
    return weight.grad


@pytest.mark.parametrize(
    "case,network",
    list(
        _pairs(
            [c for c in CASES if CASES[c].method in ("slot", "edge_popup") and not CASES[c].fused]
        )
    ),
)
def test_gradient_contract(case, network):
    """Slot: scores.grad[..., k] = dL/dW * candidates[..., k] (GS; PS with the weight it
    sampled); edge-popup: scores.grad = sign(s) * dL/dw_eff * w. (Fused layers leave dL/dW on
    their cached weight instead: tests/test_fused.py.)"""
    model = _build(case, network)
    model.train()
    for layer in selecting_layers(model):
        shape = layer.weight_shape
        channels = shape[1] * getattr(layer, "groups", 1)
        x = torch.randn(3, shape[1]) if len(shape) == 2 else torch.randn(2, channels, 6, 6)
        torch.manual_seed(0)
        weight = layer.effective_weight()
        out = F.linear(x, weight) if len(shape) == 2 else F.conv2d(x, weight, **conv_options(layer))
        layer.scores.grad = None
        (out.square().sum() / 2).backward()
        grad_w = _dense_gradient(layer, weight, x)
        if CASES[case].method == "slot":
            expected = grad_w.unsqueeze(-1) * layer.candidates()
        else:
            expected = layer.scores.detach().sign() * grad_w * layer.weight
        torch.testing.assert_close(layer.scores.grad, expected, rtol=1e-5, atol=1e-7)
