"""Layer contract: shapes, the straight-through gradient, initialisation, sharing, determinism."""

import math

import pytest
import torch
import torch.nn.functional as F

from slotsweep.nn import EdgePopupConv2d, EdgePopupLinear, SlotConv2d, SlotLinear
from slotsweep.nn.selection import sampled_indices


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
    """Same seeds, same scores, candidates and selections, fused or not."""
    (reference, _), (fused, _) = (
        _make(kind, k=5, sharing=sharing, seed=3, fused=f) for f in (False, True)
    )
    assert fused.scores.shape == reference.scores.shape == (*fused.weight_shape, 5)
    assert torch.equal(fused.scores, reference.scores)
    assert torch.equal(fused.candidates(), reference.candidates())
    assert fused.candidates().shape == (*fused.weight_shape, 5)
    scores = torch.randn(fused.scores.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for layer in (reference, fused):
            layer.scores.copy_(scores)
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
    for layer, lam, fan_sum in [(fc, fc_lambda, 700), (conv, 1.0, (32 + 64) * 9)]:
        sigma = math.sqrt(numerator / fan_sum)
        values, scores = layer.candidates(), layer.scores.detach()
        assert values.abs().max() <= sigma and values.abs().max() > 0.99 * sigma
        assert abs(values.mean().item()) < 0.01 * sigma
        assert values.var().item() == pytest.approx(sigma**2 / 3, rel=0.02)
        assert scores.min() >= 0 and scores.max() <= lam * sigma
        assert scores.mean().item() == pytest.approx(lam * sigma / 2, rel=0.02)


def test_score_lambda_overrides_default():
    layer = SlotLinear(100, 100, k=8, score_lambda=3.0)
    assert layer.scores.max().item() == pytest.approx(3.0 * layer.sigma, rel=0.01)


def test_shared_values_are_stored_once():
    none = SlotLinear(50, 40, k=8, sharing="none")
    layer = SlotLinear(50, 40, k=8, sharing="layer")
    assert none.values.numel() == 50 * 40 * 8
    assert layer.values.numel() == 8
    assert torch.equal(layer.candidates()[3, 7], layer.candidates()[0, 0])
    a = SlotLinear(50, 40, k=8, sharing="global", seed=1, values_seed=9)
    b = SlotLinear(40, 10, k=8, sharing="global", seed=2, values_seed=9)
    torch.testing.assert_close(a.values / a.sigma, b.values / b.sigma)


def test_same_seed_same_layer_and_different_seed_differs():
    a, b, c = (SlotLinear(20, 10, k=4, seed=s) for s in (5, 5, 6))
    assert torch.equal(a.scores, b.scores) and torch.equal(a.values, b.values)
    assert not torch.equal(a.scores, c.scores)


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


@pytest.mark.parametrize(
    "layer,x",
    [
        (EdgePopupLinear(30, 20, keep_fraction=0.3), torch.randn(4, 30)),
        (EdgePopupConv2d(3, 5, 3, keep_fraction=0.5), torch.randn(2, 3, 5, 5)),
    ],
)
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
    # straight through |score|: the sign of the score, then dL/dw_eff * w
    torch.testing.assert_close(
        layer.scores.grad, layer.scores.detach().sign() * effective.grad * layer.weight
    )
