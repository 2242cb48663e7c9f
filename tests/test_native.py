"""The native fused update gives the scores, momenta and selections of the PyTorch reference."""

import logging
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from slotsweep.models import create_model
from slotsweep.nn import LayerSpec, SlotConv2d, SlotLinear, native, slotify
from slotsweep.nn.fused import fused_update, fused_update_reference
from slotsweep.train.optim import build_optimizer

LR = 0.5  # large, so that selections change every step


@pytest.fixture
def kernel():
    if not native.available():
        pytest.skip(f"native kernel unavailable: {native.unavailable_reason()}")


@pytest.fixture
def fresh_build(monkeypatch, tmp_path):
    """An empty kernel cache and a forgotten load, restored for the tests that follow; the
    prebuilt kernel is skipped, so that the run-time build is what these tests see."""
    monkeypatch.setenv("SLOTSWEEP_CACHE", str(tmp_path / "kernels"))
    monkeypatch.setenv("SLOTSWEEP_NATIVE", "runtime")
    native._load.cache_clear()
    yield tmp_path / "kernels"
    native._load.cache_clear()


def _layer(kind, k, sharing, shape):
    if kind == "linear":
        layer = SlotLinear(
            shape[1], shape[0], k, sharing=sharing, seed=3, values_seed=5, fused=True
        )
    else:
        layer = SlotConv2d(
            shape[1], shape[0], 3, k, sharing=sharing, seed=3, values_seed=5, fused=True
        )
    layer.refresh_cached_weight()
    return layer


def _native_step(layer, buffer, momentum, weight_decay):
    """One `fused_update` step that must take the native path."""
    assert native.supports(layer)
    return fused_update(layer, buffer, LR, momentum, weight_decay)


def _assert_same(layer, reference, buffer, reference_buffer):
    """Bitwise (assert_close with no tolerance also lets NaN equal NaN)."""
    torch.testing.assert_close(layer.scores, reference.scores, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(layer.cached_weight, reference.cached_weight)
    if reference_buffer is not None:
        torch.testing.assert_close(buffer, reference_buffer, rtol=0, atol=0)


def _compare(kind, k, sharing, shape, momentum, weight_decay, steps=3):
    layer, reference = _layer(kind, k, sharing, shape), _layer(kind, k, sharing, shape)
    assert native.supports(layer)
    generator = torch.Generator().manual_seed(k)
    buffer = reference_buffer = None
    for _ in range(steps):
        grad = torch.randn(layer.cached_weight.shape, generator=generator)
        layer.cached_weight.grad, reference.cached_weight.grad = grad.clone(), grad.clone()
        reference_buffer = fused_update_reference(
            reference, reference_buffer, LR, momentum, weight_decay
        )
        buffer = _native_step(layer, buffer, momentum, weight_decay)
        _assert_same(layer, reference, buffer, reference_buffer)


@pytest.mark.parametrize("k", [1, 2, 3, 8, 33])
@pytest.mark.parametrize("sharing", ["none", "layer", "global"])
@pytest.mark.parametrize("kind,shape", [("linear", (29, 37)), ("conv", (5, 3))])
@pytest.mark.parametrize(
    "momentum,weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.0, 1e-4), (0.9, 1e-4)]
)
def test_native_matches_reference(kernel, kind, shape, sharing, k, momentum, weight_decay):
    _compare(kind, k, sharing, shape, momentum, weight_decay)


@pytest.mark.parametrize("k", [1, 2, 4, 8, 12, 33, 80])
@pytest.mark.parametrize("sharing", ["none", "layer"])
def test_kernel_selects_every_candidate_value(kernel, k, sharing):
    """Scores that select slot j everywhere, no gradient: the kernel writes value j of every
    connection, as candidates() has it (packed, tiled and scalar loops alike)."""
    layer = _layer("linear", k, sharing, (21, 19))
    for j in range(k):
        with torch.no_grad():
            layer.scores.zero_()[..., j] = 1.0
        layer.cached_weight.grad = torch.zeros(layer.cached_weight.shape)
        _native_step(layer, None, 0.0, 0.0)
        assert torch.equal(layer.cached_weight, layer.candidates()[..., j])


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("k", [1, 2, 4, 8, 16, 32, 64, 65])
def test_threaded_layers_match_reference(kernel, two_threads, k):
    """Big enough for the thread team, with rows that fill no whole block of the last thread."""
    _compare("linear", k, "none", (211, 157), 0.9, 1e-4, steps=2)


@pytest.mark.parametrize("k", [2, 3, 4, 8, 33, 80])
def test_ties_signed_zeros_and_nan_pick_as_torch_argmax(kernel, k):
    """Integer scores tie often (across 64-score tiles too); -0 ties +0; the first NaN wins."""
    layer, reference = _layer("linear", k, "none", (40, 50)), _layer("linear", k, "none", (40, 50))
    generator = torch.Generator().manual_seed(1)
    scores = torch.randint(-1, 2, layer.scores.shape, generator=generator).float()
    scores[scores == 0] = torch.where(
        torch.rand(int((scores == 0).sum()), generator=generator) < 0.5, -0.0, 0.0
    )
    scores[3, :, 1] = float("nan")
    scores[4, :, 0] = float("inf")
    scores[5, :, -1] = float("-inf")
    for target in (layer, reference):
        target.scores.data.copy_(scores)
        target.cached_weight.grad = torch.zeros(target.cached_weight.shape)
    fused_update_reference(reference, None, LR, 0.0, 0.0)
    _native_step(layer, None, 0.0, 0.0)
    _assert_same(layer, reference, None, None)


def test_non_contiguous_momentum_buffer(kernel):
    layer, reference = _layer("linear", 8, "none", (6, 7)), _layer("linear", 8, "none", (6, 7))
    start = torch.randn(layer.scores.shape)
    buffer = torch.empty(tuple(reversed(start.shape))).permute(2, 1, 0).copy_(start)
    grad = torch.randn(layer.cached_weight.shape)
    layer.cached_weight.grad, reference.cached_weight.grad = grad.clone(), grad.clone()
    reference_buffer = fused_update_reference(reference, start.clone(), LR, 0.9, 1e-4)
    native.update(layer, buffer, LR, 0.9, 1e-4, first_step=False)
    _assert_same(layer, reference, buffer, reference_buffer)


@pytest.mark.parametrize("update", ["native", "triton"])
def test_update_refuses_what_the_kernel_would_misread(kernel, update):
    """Both kernels trust the momentum buffer's shape (a mismatch would write outside it):
    `native.step_inputs` refuses it before either runs. (torch itself refuses a `.grad` of
    another shape or dtype, so the gradient check there cannot be reached from here.)"""
    if update == "triton":
        pytest.importorskip("triton")
        from slotsweep.nn import triton_update as module  # imports triton only on its first use
    else:
        module = native
    layer = _layer("linear", 4, "none", (3, 5))
    scores = layer.scores.detach().clone()
    layer.cached_weight.grad = torch.randn(layer.cached_weight.shape)
    for buffer in (None, torch.zeros(3, 5), torch.zeros_like(scores, dtype=torch.float64)):
        with pytest.raises(ValueError, match="momentum needs a float32 buffer"):
            module.update(layer, buffer, LR, 0.9, 0.0, first_step=False)
    assert torch.equal(layer.scores, scores)  # refused before anything was written


def test_supports_only_float32_cpu_layers(kernel):
    layer = _layer("linear", 4, "none", (3, 5))
    assert native.supports(layer)
    layer.double().refresh_cached_weight()
    assert not native.supports(layer)
    layer.float().cached_weight = None
    assert not native.supports(layer)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("SLOTSWEEP_NATIVE", "0")
    assert not native.available()
    assert native.unavailable_reason() == "disabled by SLOTSWEEP_NATIVE=0"
    assert not native.supports(_layer("linear", 4, "none", (3, 5)))


def _train_fused(steps=3):
    model = create_model("lenet_300_100", LayerSpec(k=4, fused=True), dropout=0.0)
    optimizer = build_optimizer(model, 0.1, 0.9, 1e-4)
    generator = torch.Generator().manual_seed(0)
    before = [layer.scores.detach().clone() for layer in optimizer.fused.values()]
    for _ in range(steps):
        x, y = torch.randn(8, 1, 28, 28, generator=generator), torch.randint(0, 10, (8,))
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss)
    after = [layer.scores for layer in optimizer.fused.values()]
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_missing_compiler_falls_back_once(fresh_build, monkeypatch, caplog):
    monkeypatch.setattr(native, "COMPILER", str(fresh_build / "no-such-gcc"))
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert not native.available()
        assert not native.available()
        _train_fused()
    warnings = [r for r in caplog.records if r.name == native.__name__]
    assert len(warnings) == 1 and "no-such-gcc" in warnings[0].getMessage()


def test_broken_source_falls_back(fresh_build, monkeypatch, tmp_path, caplog):
    broken = tmp_path / "broken.c"
    broken.write_text("int slot_update(void) { return }\n")
    monkeypatch.setattr(native, "SOURCE", broken)
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert not native.available()
    assert "failed" in native.unavailable_reason()
    assert not list(fresh_build.glob("*.so")) and not list(fresh_build.glob(".build-*"))
    _train_fused()


@pytest.mark.parametrize("flags", native.FLAG_SETS[1:], ids=["portable", "no-openmp"])
def test_fallback_builds_match_reference(fresh_build, monkeypatch, two_threads, flags):
    """The loops built without -march=native (other CPUs) and without OpenMP (other compilers)."""
    monkeypatch.setattr(native, "FLAG_SETS", (flags,))
    if native.unavailable_reason() is not None:
        pytest.skip(f"native kernel unavailable: {native.unavailable_reason()}")
    for k, sharing in ((1, "none"), (4, "layer"), (8, "none"), (33, "global")):
        _compare("linear", k, sharing, (29, 37), 0.9, 1e-4, steps=2)
        _check_selection((29, 37), k, shared=sharing != "none")
    _compare("linear", 8, "none", (211, 157), 0.9, 1e-4, steps=2)
    _check_selection((211, 157), 8, shared=False)


def test_processes_starting_together_share_one_build(fresh_build):
    """Ray trials start together: each compiles to a temporary name and renames it into place,
    so none loads a half-written library, and later processes reuse the build."""
    code = "from slotsweep.nn import native; print(native.unavailable_reason())"
    processes = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    reasons = [process.communicate(timeout=300)[0].strip() for process in processes]
    if reasons[0] != "None":
        pytest.skip(f"native kernel unavailable: {reasons[0]}")
    assert reasons == ["None", "None"]
    built = list(fresh_build.iterdir())
    assert len(built) == 1 and built[0].suffix == ".so"
    stamp = built[0].stat().st_mtime_ns
    assert native.available()
    assert list(fresh_build.iterdir()) == built and built[0].stat().st_mtime_ns == stamp


@pytest.fixture
def forget_load():
    """A load made again under the test's environment, and again after it."""
    native._load.cache_clear()
    yield
    native._load.cache_clear()


def test_prebuilt_kernel_is_installed_and_loads(forget_load, monkeypatch):
    """`pip install -e .` (scripts/setup.sh) builds the kernel; trials load it, no compiler run."""
    monkeypatch.delenv("SLOTSWEEP_NATIVE", raising=False)
    monkeypatch.setattr(native, "COMPILER", "no-such-gcc")  # a run-time build would fail
    path = native.prebuilt_path()
    assert path is not None, "no prebuilt kernel: run `pip install -e .` (scripts/setup.sh)"
    assert native.available() and native.origin() == "prebuilt"


def test_prebuilt_kernel_of_another_source_is_not_loaded(forget_load, monkeypatch, tmp_path):
    """An edited kernel source (or another CPU) does not load the install's build."""
    if native.prebuilt_path() is None:
        pytest.skip("no prebuilt kernel")
    edited = tmp_path / "fused_kernel.c"
    edited.write_bytes(native.SOURCE.read_bytes() + b"\n/* edited */\n")
    monkeypatch.setattr(native, "SOURCE", edited)
    monkeypatch.setenv("SLOTSWEEP_CACHE", str(tmp_path / "kernels"))
    monkeypatch.delenv("SLOTSWEEP_NATIVE", raising=False)
    if native.unavailable_reason() is not None:
        pytest.skip(f"no run-time build here: {native.unavailable_reason()}")
    assert native.origin() == "runtime" and list((tmp_path / "kernels").glob("*.so"))


def _impl_of(impl: str) -> str:
    from slotsweep.config import TrialConfig
    from slotsweep.train.trainer import train_trial

    config = TrialConfig(
        dataset="synthetic", epochs=1, train_subset=200, batch_size=50, impl=impl, k=4
    )
    return train_trial(config).impl


@pytest.mark.parametrize(
    "environment,impl,tag",
    [
        (None, "auto", "fused-native-prebuilt"),
        ("runtime", "fused", "fused-runtime-build"),
        ("0", "fused", "fused-pytorch"),
        ("0", "auto", "reference"),
        (None, "reference", "reference"),
    ],
)
def test_impl_tag_says_which_update_ran(forget_load, monkeypatch, tmp_path, environment, impl, tag):
    """`slotsweep.impl` names the update that ran: never `fused-native-*` when PyTorch's did."""
    monkeypatch.setenv("SLOTSWEEP_CACHE", str(tmp_path / "kernels"))
    if environment is None:
        monkeypatch.delenv("SLOTSWEEP_NATIVE", raising=False)
        if native.prebuilt_path() is None and tag.endswith("prebuilt"):
            pytest.skip("no prebuilt kernel")
    else:
        monkeypatch.setenv("SLOTSWEEP_NATIVE", environment)
    if tag.startswith("fused-native") or tag == "fused-runtime-build":
        if native.unavailable_reason() is not None:
            pytest.skip(f"native kernel unavailable: {native.unavailable_reason()}")
    assert _impl_of(impl) == tag


def test_impl_tag_of_layers_the_kernel_cannot_serve(kernel):
    """A fused layer the kernel refuses (non-contiguous scores) runs PyTorch's fused update."""
    model = create_model("lenet_300_100", LayerSpec(k=4, fused=True), dropout=0.0)
    optimizer = build_optimizer(model, 0.1, 0.9, 0.0)
    first = next(iter(optimizer.fused.values()))
    first.scores.data = first.scores.data.transpose(0, 1).contiguous().transpose(0, 1)
    F.cross_entropy(model(torch.randn(4, 1, 28, 28)), torch.randint(0, 10, (4,))).backward()
    optimizer.step()
    assert native.update_tag(model) == "fused-mixed"


# --- the default path: the greedy selection and score gradient under any torch optimizer ---


def _tied_scores(shape, k, seed=1):
    """Integer scores that tie often (across vectors and 64-score tiles), -0 beside +0, a NaN
    (the first NaN wins, as torch.argmax has it) and infinities."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randint(-1, 2, (*shape, k), generator=generator).float()
    zeros = scores == 0
    scores[zeros] = torch.where(torch.rand(int(zeros.sum()), generator=generator) < 0.5, -0.0, 0.0)
    flat = scores.view(-1, k)
    flat[3, k // 2] = float("nan")
    flat[4, -1], flat[5, 0] = float("inf"), float("-inf")
    flat[6, :] = 2.0  # all K tied: index 0
    return scores


def _check_selection(shape, k, shared):
    """`native.select` and `native.score_gradient` against torch.argmax, take_along_dim and a
    broadcast multiply (none of them the reference path's own max and gather)."""
    scores = _tied_scores(shape, k)
    generator = torch.Generator().manual_seed(2)
    values = torch.randn((k,) if shared else (*shape, k), generator=generator)
    weight, indices = native.select(scores, values, with_indices=True)
    expected = scores.argmax(-1)
    assert torch.equal(indices, expected)
    candidates = values.expand(*shape, k)
    assert torch.equal(weight, torch.take_along_dim(candidates, expected[..., None], -1)[..., 0])
    assert torch.equal(native.select(scores, values)[0], weight)  # without the indices
    grad = torch.randn(shape, generator=generator)
    assert torch.equal(native.score_gradient(grad, values), grad[..., None] * candidates)


SELECTION_SHAPES = [(29, 37), (5, 3, 3, 3), (16, 1, 1, 2), (7,)]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8, 12, 16, 33, 80])
@pytest.mark.parametrize("shape", SELECTION_SHAPES)
@pytest.mark.parametrize("shared", [False, True], ids=["per-connection", "shared"])
def test_native_selection_and_score_gradient(kernel, shape, k, shared):
    _check_selection(shape, k, shared)


def test_native_selection_threaded(kernel, two_threads):
    """Big enough for the thread team, with rows that fill no whole block of the last thread."""
    for k in (2, 8, 33):
        _check_selection((211, 157), k, shared=False)


def _slot_model(k=8, selection="greedy"):
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1, groups=3),
        torch.nn.ReLU(),
        torch.nn.Conv2d(6, 4, (3, 2), stride=2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 3 * 4, 10),
    )
    return slotify(model, k=k, selection=selection, keep=())


def _train_default_path(monkeypatch, native_on, make_optimizer, steps=4, k=8):
    """Scores after `steps` steps of a torch optimizer (autograd fills `scores.grad`), with
    the native kernel on or off; asserts which selection ran."""
    monkeypatch.setenv("SLOTSWEEP_NATIVE", "1" if native_on else "0")
    torch.manual_seed(0)  # the dense biases slotify keeps
    model = _slot_model(k)
    optimizer = make_optimizer(model.parameters())
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 8, 9, generator=generator)
    y = torch.randint(0, 10, (16,), generator=generator)
    changed = 0
    for _ in range(steps):
        optimizer.zero_grad()
        before = [layer.selection_indices() for layer in model.modules() if hasattr(layer, "k")]
        out = model(x)
        backward_names = {
            type(layer.effective_weight().grad_fn).__name__
            for layer in model.modules()
            if hasattr(layer, "k")
        }
        assert backward_names == {"GreedyWeightBackward" if native_on else "SelectWeightBackward"}
        F.cross_entropy(out, y).backward()
        optimizer.step()
        after = [layer.selection_indices() for layer in model.modules() if hasattr(layer, "k")]
        changed += sum(int((a != b).sum()) for a, b in zip(before, after, strict=True))
    assert changed > 0  # the steps moved selections: the comparison covers new argmaxes
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9, weight_decay=1e-4),
        lambda p: torch.optim.Adam(p, lr=0.05),
    ],
    ids=["sgd", "adam"],
)
def test_torch_optimizers_step_as_the_pytorch_path(kernel, monkeypatch, make_optimizer):
    """Linear and (grouped, strided, non-square) conv slot layers trained by torch optimizers
    end with the same scores, bit for bit, with the native selection and gradient or without."""
    native_run = _train_default_path(monkeypatch, True, make_optimizer)
    pytorch_run = _train_default_path(monkeypatch, False, make_optimizer)
    for a, b in zip(native_run, pytorch_run, strict=True):
        assert torch.equal(a, b)


def test_layer_gradient_matches_straight_through_estimator(kernel):
    """scores.grad of a native forward and backward is dL/dW * values, dL/dW from a dense
    layer holding the selected weight (computed apart, by F.linear's own autograd)."""
    layer = SlotLinear(13, 11, 8, seed=4)
    x = torch.randn(5, 13)
    assert type(layer.effective_weight().grad_fn).__name__ == "GreedyWeightBackward"
    layer(x).square().sum().backward()
    weight = torch.take_along_dim(layer.values, layer.scores.argmax(-1)[..., None], -1)[..., 0]
    weight.requires_grad_(True)
    F.linear(x, weight).square().sum().backward()
    assert torch.equal(layer.scores.grad, weight.grad[..., None] * layer.values)


def test_layers_the_selection_cannot_serve_take_the_pytorch_path(kernel):
    """Non-contiguous or float64 scores, and probabilistic selection, take the PyTorch path."""
    layer = SlotConv2d(3, 4, 3, 8, seed=1)
    assert native.serves(layer.scores, layer.values)
    reference = layer.effective_weight().detach()
    layer.scores.data = layer.scores.data.transpose(0, 1).contiguous().transpose(0, 1)
    assert not native.serves(layer.scores, layer.values)
    assert type(layer.effective_weight().grad_fn).__name__ == "SelectWeightBackward"
    assert torch.equal(layer.effective_weight(), reference)
    assert not native.serves(layer.scores.double().contiguous(), layer.values.double())
    sampling = SlotLinear(6, 5, 4, selection="probabilistic", seed=2)
    sampling(torch.randn(3, 6)).sum().backward()
    assert sampling.scores.grad.shape == sampling.scores.shape
    assert type(sampling.effective_weight().grad_fn).__name__ == "SelectWeightBackward"


def test_native_score_gradient_refuses_mismatched_shapes(kernel):
    with pytest.raises(ValueError, match="gradient of shape"):
        native.score_gradient(torch.randn(3, 4), torch.randn(4, 3, 8))


def test_second_order_gradients_as_the_pytorch_path(kernel, monkeypatch):
    """With create_graph=True the score gradient stays differentiable (here in the input)."""
    results = []
    for setting in ("1", "0"):
        monkeypatch.setenv("SLOTSWEEP_NATIVE", setting)
        layer = SlotLinear(7, 5, 4, seed=6)
        x = torch.randn(3, 7, generator=torch.Generator().manual_seed(0), requires_grad=True)
        (scores_grad,) = torch.autograd.grad(
            layer(x).square().sum(), layer.scores, create_graph=True
        )
        (x_grad,) = torch.autograd.grad(scores_grad.sum(), x)
        results.append((scores_grad.detach(), x_grad))
    for native_result, pytorch_result in zip(*results, strict=True):
        assert torch.equal(native_result, pytorch_result)
