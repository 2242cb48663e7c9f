"""Layer contract: shapes, the straight-through gradient, initialisation, sharing, determinism."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slotsweep.nn import EdgePopupConv2d, EdgePopupLinear, SlotConv2d, SlotLinear
from slotsweep.nn.selection import sampled_indices
from slotsweep.nn.values import slot_values, value_hash, values_key


def _dense_forward(layer, weight, x):
    if isinstance(layer, (SlotConv2d, EdgePopupConv2d)):
        return F.conv2d(x, weight, stride=layer.stride, padding=layer.padding)
    return F.linear(x, weight)


def _make(kind, **kw):
    if kind == "linear":
        return SlotLinear(12, 7, **kw), torch.randn(5, 12)
    return SlotConv2d(3, 4, 3, padding=1, **kw), torch.randn(2, 3, 6, 6)


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("sharing", ["none", "layer", "global"])
def test_fused_layers_keep_the_contract_of_reference_layers(kind, sharing):
    """Same seeds, same candidates and selections, whether the values are stored or not."""
    (reference, _), (fused, _) = (_make(kind, k=5, sharing=sharing, seed=3, fused=f)
                                  for f in (False, True))
    assert (fused.values is None) == (sharing == "none")
    assert fused.scores.shape == reference.scores.shape == (*fused.weight_shape, 5)
    assert torch.equal(fused.candidates(), reference.candidates())
    assert fused.candidates().shape == (*fused.weight_shape, 5)
    with torch.no_grad():
        for layer in (reference, fused):
            layer.scores.copy_(torch.randn(layer.scores.shape, generator=torch.Generator()))
    indices = fused.selection_indices()
    assert indices.dtype == torch.int64 and indices.shape == fused.weight_shape
    assert torch.equal(indices, reference.selection_indices())
    chosen = torch.gather(fused.candidates(), -1, indices.unsqueeze(-1)).squeeze(-1)
    assert torch.equal(fused.selected_weight(), chosen)
    assert torch.equal(fused.selected_weight(), reference.selected_weight())


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("sharing", ["none", "layer", "global"])
def test_greedy_score_gradient_matches_dense_computation(kind, sharing):
    layer, x = _make(kind, k=5, sharing=sharing, seed=3)
    upstream = torch.randn_like(layer(x))
    (layer(x) * upstream).sum().backward()
    weight = layer.selected_weight().clone().requires_grad_(True)
    (_dense_forward(layer, weight, x) * upstream).sum().backward()
    expected = weight.grad.unsqueeze(-1) * layer.candidates()
    assert layer.scores.shape == (*layer.weight_shape, 5)
    torch.testing.assert_close(layer.scores.grad, expected)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_probabilistic_gradient_uses_the_sampled_weight(kind):
    layer, x = _make(kind, k=4, selection="probabilistic", seed=1)
    state = layer._sample_generator().get_state()
    out = layer(x)
    replay = torch.Generator().set_state(state)
    indices = sampled_indices(layer.scores, replay)
    weight = torch.gather(layer.candidates(), -1, indices.unsqueeze(-1)).squeeze(-1)
    weight.requires_grad_(True)
    torch.testing.assert_close(out, _dense_forward(layer, weight, x))
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    (_dense_forward(layer, weight, x) * upstream).sum().backward()
    torch.testing.assert_close(layer.scores.grad, weight.grad.unsqueeze(-1) * layer.candidates())


def test_probabilistic_sampling_follows_softmax():
    scores = torch.tensor([[0.0, 1.0, 2.0]]).expand(20000, 3)
    drawn = sampled_indices(scores, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(drawn, minlength=3).float() / drawn.numel()
    torch.testing.assert_close(frequencies, torch.softmax(scores[0], 0), atol=0.015, rtol=0)


def test_probabilistic_eval_is_greedy():
    layer, x = _make("linear", k=4, selection="probabilistic")
    layer.eval()
    torch.testing.assert_close(layer(x), F.linear(x, layer.selected_weight()))


@pytest.mark.parametrize("recipe,numerator,fc_lambda", [("paper", 2, 0.1), ("authors", 6, 1.0)])
def test_initial_distributions(recipe, numerator, fc_lambda):
    fc = SlotLinear(400, 300, k=16, recipe=recipe, seed=0)
    conv = SlotConv2d(32, 64, 3, k=16, recipe=recipe, seed=0)
    fused = SlotLinear(400, 300, k=16, recipe=recipe, seed=0, fused=True)
    for layer, lam, fan_sum in [(fc, fc_lambda, 700), (conv, 1.0, (32 + 64) * 9),
                                (fused, fc_lambda, 700)]:
        sigma = math.sqrt(numerator / fan_sum)
        values, scores = layer.candidates(), layer.scores.detach()
        assert values.min() >= -sigma and values.max() < sigma
        assert values.abs().max() > 0.99 * sigma
        assert abs(values.mean().item()) < 0.01 * sigma
        assert values.var().item() == pytest.approx(sigma**2 / 3, rel=0.02)
        assert scores.min() >= 0 and scores.max() <= lam * sigma
        assert scores.mean().item() == pytest.approx(lam * sigma / 2, rel=0.02)


def _python_hash(index, key):
    """The hash of slotsweep.nn.values in plain Python integers (two prospector32 rounds)."""
    def mix(x):
        x ^= x >> 15
        x = x * 0x2C1B3C6D & 0xFFFFFFFF
        x ^= x >> 12
        x = x * 0x297A2D39 & 0xFFFFFFFF
        return x ^ (x >> 15)
    low, high = index & 0xFFFFFFFF, index >> 32
    return mix(mix(low ^ (key & 0xFFFFFFFF)) ^ high ^ (key >> 32))


def test_value_hash_is_exact_against_plain_python():
    generator = np.random.default_rng(0)
    indices = [0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 7, 2**40 + 3, 2**62 + 5]
    indices += [int(i) for i in generator.integers(0, 2**62, 200)]
    for key in (0, 1, values_key(0), values_key(12345), 2**63 - 1):
        hashed = value_hash(torch.tensor(indices), key).tolist()
        assert hashed == [_python_hash(i, key) for i in indices]
        sigma = 0.0371
        # sigma (2u - 1) = float32(sigma) (2 (h >> 8) - 2^24) 2^-24: exact in float64, then
        # rounded once to float32
        expected = [np.float32(float(np.float32(sigma)) * (2 * (_python_hash(i, key) >> 8)
                                                           - 2**24) * 2.0**-24) for i in indices]
        assert slot_values(torch.tensor(indices), key, sigma).tolist() == expected


def _chi_square(samples, bins):
    counts = torch.bincount(samples, minlength=bins).double()
    expected = samples.numel() / bins
    return ((counts - expected) ** 2 / expected).sum().item()


def test_values_are_uniform_and_uncorrelated():
    """10^6 values of one key; every bound is about 4.5 standard deviations, chi-square ones both
    ways (a counter that is too regular fails as well as one that is lumpy)."""
    n, k = 10**6, 8
    unit = slot_values(torch.arange(n), values_key(7), 1.0).double()
    assert unit.min() >= -1 and unit.max() < 1
    assert abs(unit.mean().item()) < 0.005 and unit.var().item() == pytest.approx(1 / 3, rel=0.01)
    u = (unit + 1) / 2
    for bins in (1000, 4096):  # high bits, then the low 12 of the 24 bits a value uses
        sample = (u * bins).long() if bins == 1000 else (u * 2**24).long() % bins
        sd = math.sqrt(2 * (bins - 1))
        assert abs(_chi_square(sample, bins) - (bins - 1)) < 4.5 * sd
    pairs = (u[0::2] * 32).long() * 32 + (u[1::2] * 32).long()  # neighbours, jointly
    assert abs(_chi_square(pairs, 1024) - 1023) < 4.5 * math.sqrt(2 * 1023)
    slots = unit.view(-1, k)
    for a, b in [(unit[:-1], unit[1:]), (slots[:, 0], slots[:, 1]), (slots[:, 3], slots[:, 7]),
                 (slots[:-1, 2], slots[1:, 2]), (unit[:-k], unit[k:])]:
        correlation = torch.corrcoef(torch.stack([a, b]))[0, 1].item()
        assert abs(correlation) * math.sqrt(a.numel()) < 4.5  # about N(0, 1) if independent


def test_values_of_different_keys_are_independent():
    """Other seeds, and keys that share the low word (round two must decorrelate them)."""
    index = torch.arange(10**5)
    base = slot_values(index, values_key(7), 1.0)
    for key in (values_key(8), values_key(7) ^ 2**32, values_key(7) ^ 2**62):
        other = slot_values(index, key, 1.0)
        assert (other == base).float().mean() < 1e-3
        assert abs(torch.corrcoef(torch.stack([base, other]))[0, 1].item()) < 0.02


def test_score_lambda_overrides_default():
    layer = SlotLinear(100, 100, k=8, score_lambda=3.0)
    assert layer.scores.max().item() == pytest.approx(3.0 * layer.sigma, rel=0.01)


def test_shared_values_are_stored_once():
    none = SlotLinear(50, 40, k=8, sharing="none")
    layer = SlotLinear(50, 40, k=8, sharing="layer")
    assert none.values.numel() == 50 * 40 * 8
    assert layer.values.numel() == 8
    assert SlotLinear(50, 40, k=8, sharing="layer", fused=True).values.numel() == 8
    fused = SlotLinear(50, 40, k=8, sharing="none", fused=True)
    assert fused.values is None and not list(fused.buffers())
    assert torch.equal(layer.candidates()[3, 7], layer.candidates()[0, 0])
    a = SlotLinear(50, 40, k=8, sharing="global", seed=1, values_seed=9)
    b = SlotLinear(40, 10, k=8, sharing="global", seed=2, values_seed=9)
    torch.testing.assert_close(a.values / a.sigma, b.values / b.sigma)


def test_same_seed_same_layer_and_different_seed_differs():
    a, b, c = (SlotLinear(20, 10, k=4, seed=s) for s in (5, 5, 6))
    assert torch.equal(a.scores, b.scores) and torch.equal(a.values, b.values)
    assert not torch.equal(a.scores, c.scores)
    assert (a.values == c.values).float().mean() < 0.01
    d = SlotLinear(20, 10, k=4, seed=6, values_seed=5)
    assert torch.equal(d.values, a.values) and not torch.equal(d.scores, a.scores)


def test_selection_indices_and_selected_weight():
    layer = SlotLinear(6, 3, k=4)
    with torch.no_grad():
        layer.scores.zero_()
        layer.scores[..., 2] = 1.0
    assert torch.equal(layer.selection_indices(), torch.full((3, 6), 2))
    torch.testing.assert_close(layer.selected_weight(), layer.candidates()[..., 2])


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="sharing"):
        SlotLinear(2, 2, k=2, sharing="row")
    with pytest.raises(ValueError, match="selection"):
        SlotLinear(2, 2, k=2, selection="best")
    with pytest.raises(ValueError, match="k must"):
        SlotLinear(2, 2, k=0)


@pytest.mark.parametrize("layer,x", [(EdgePopupLinear(30, 20, 0.3), torch.randn(4, 30)),
                                     (EdgePopupConv2d(3, 5, 3, 0.5), torch.randn(2, 3, 5, 5))])
def test_edge_popup_mask_and_gradient(layer, x):
    mask = layer.mask()
    assert mask.sum().item() == round(layer.keep_fraction * mask.numel())
    kept = layer.scores.detach().abs()[mask.bool()]
    dropped = layer.scores.detach().abs()[~mask.bool()]
    assert kept.min() >= dropped.max()
    magnitudes = layer.weight.abs()
    assert torch.allclose(magnitudes, torch.full_like(magnitudes, magnitudes.max()))
    upstream = torch.randn_like(layer(x))
    (layer(x) * upstream).sum().backward()
    effective = (layer.weight * mask).detach().requires_grad_(True)
    (_dense_forward(layer, effective, x) * upstream).sum().backward()
    torch.testing.assert_close(layer.scores.grad, effective.grad * layer.weight)
