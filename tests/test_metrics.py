"""Metrics against independent hand counts: FLOPs, memory, model size, selection hashes."""

import math

import pytest
import torch
import torch.nn.functional as F

from slotsweep.models import create_model
from slotsweep.nn import LayerSpec
from slotsweep.train.metrics import (
    change_fraction,
    dense_flops_per_example,
    extra_flops_per_step,
    index_bits,
    memory_state_bytes,
    model_size_bytes,
    pack_indices,
    selection_sha256,
    selection_states,
    unpack_indices,
)
from slotsweep.train.optim import build_optimizer

LENET_WEIGHTS = 784 * 300 + 300 * 100 + 100 * 10


def _lenet(**kw):
    return create_model("lenet_300_100", LayerSpec(**kw))


def _one_step(model, momentum=0.9):
    optimizer = build_optimizer(model, lr=0.1, momentum=momentum, weight_decay=1e-4)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    return optimizer


@pytest.mark.parametrize("method", ["slot", "dense", "edge_popup"])
def test_lenet_flops_match_hand_count(method):
    # forward 2*MACs; backward 2*MACs for weight grads + input grads of layers 2 and 3 only
    hand = 2 * LENET_WEIGHTS + 2 * LENET_WEIGHTS + 2 * (300 * 100 + 100 * 10)
    model = _lenet(method=method, k=4)
    assert dense_flops_per_example(model, torch.randn(3, 1, 28, 28)) == hand


def test_extra_flops_per_step_hand_count():
    assert extra_flops_per_step(_lenet(method="slot", k=8)) == LENET_WEIGHTS * 15
    assert (
        extra_flops_per_step(_lenet(method="slot", k=8, selection="probabilistic"))
        == LENET_WEIGHTS * 23
    )
    assert extra_flops_per_step(_lenet(method="edge_popup")) == LENET_WEIGHTS * 4
    assert extra_flops_per_step(_lenet(method="dense")) == 0


@pytest.mark.parametrize(
    "sharing,values_bytes",
    [("none", LENET_WEIGHTS * 8 * 4), ("layer", 3 * 8 * 4), ("global", 3 * 8 * 4)],
)
def test_memory_state_bytes_slot(sharing, values_bytes):
    model = _lenet(method="slot", k=8, sharing=sharing)
    optimizer = _one_step(model)
    per_connection_k = 3 * LENET_WEIGHTS * 8 * 4  # scores, their gradient, momentum
    assert memory_state_bytes(model, optimizer) == values_bytes + per_connection_k


@pytest.mark.parametrize(
    "sharing,per_connection,per_layer", [("none", 3 * 8 + 2, 0), ("layer", 2 * 8 + 2, 8)]
)
def test_memory_state_bytes_fused_and_dense(sharing, per_connection, per_layer):
    fused = _lenet(method="slot", k=8, sharing=sharing, fused=True)
    optimizer = _one_step(fused)
    # scores, momentum (K each), values (K each unless shared: then K per layer, 3 layers)
    # + cached selected weight and its gradient (1 each); no score gradient
    expected = (LENET_WEIGHTS * per_connection + 3 * per_layer) * 4
    assert memory_state_bytes(fused, optimizer) == expected
    dense = _lenet(method="dense")
    assert memory_state_bytes(dense, _one_step(dense)) == LENET_WEIGHTS * 3 * 4


def test_sharing_shrinks_memory():
    sizes = {}
    for sharing in ("none", "layer", "global"):
        model = _lenet(method="slot", k=16, sharing=sharing)
        sizes[sharing] = memory_state_bytes(model, _one_step(model))
    assert sizes["layer"] == sizes["global"] < sizes["none"] * 0.76


@pytest.mark.parametrize("k", [1, 2, 3, 8, 33])
def test_pack_round_trip_and_bits(k):
    indices = torch.randint(0, k, (1001,))
    bits = index_bits(k)
    assert bits == (0 if k == 1 else math.ceil(math.log2(k)))
    packed = pack_indices(indices, bits)
    assert len(packed) == math.ceil(1001 * bits / 8)
    assert torch.equal(unpack_indices(packed, bits, 1001), indices)


def test_model_size_bytes():
    assert model_size_bytes(_lenet(method="slot", k=8)) == sum(
        math.ceil(n * 3 / 8) + 8 for n in (784 * 300, 300 * 100, 100 * 10)
    )
    assert model_size_bytes(_lenet(method="slot", k=1)) == 3 * 8
    assert model_size_bytes(_lenet(method="dense")) == LENET_WEIGHTS * 4
    assert model_size_bytes(_lenet(method="edge_popup")) == sum(
        math.ceil(n / 8) + 8 for n in (784 * 300, 300 * 100, 100 * 10)
    )


def test_selection_hash_is_deterministic_and_sensitive():
    a, b = _lenet(method="slot", k=8, seed=1), _lenet(method="slot", k=8, seed=1)
    assert selection_sha256(a) == selection_sha256(b)
    assert selection_sha256(a) != selection_sha256(_lenet(method="slot", k=8, seed=2))
    assert selection_sha256(_lenet(method="dense")) is None
    before = selection_states(a)
    with torch.no_grad():
        layer = a[1]
        layer.scores[0, 0] = -layer.scores[0, 0] - 10
        layer.scores[0, 0, (layer.selection_indices()[0, 0] + 1) % 8] = 10
    assert change_fraction(before, selection_states(a)) == pytest.approx(1 / LENET_WEIGHTS)
