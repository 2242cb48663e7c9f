"""The Triton fused update against `fused_update_reference`, layer by layer.

Without a GPU the kernel runs in Triton's interpreter on CPU tensors. TRITON_INTERPRET must be
set before Triton is imported (its own library functions, `tl.argmax` among them, are decorated
then), so it is set here at collection when nothing has imported Triton yet; where something has
(importing torchvision does), the cases run in a fresh process that sets it
(`test_the_cases_in_a_fresh_interpreter`). Only this file's calls reach the kernel on the CPU
(`triton_update.supports` refuses CPU layers, which keep the native kernel), so the setting
changes nothing for other tests. With a GPU the same cases run the compiled kernel on CUDA.
"""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

CUDA = torch.cuda.is_available()
if not CUDA and "triton" not in sys.modules:
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _runs_here() -> bool:
    """Whether the kernel can run in this process: on CUDA, or in an interpreter that Triton's
    library functions were decorated for."""
    if CUDA:
        return True
    if os.environ.get("TRITON_INTERPRET") != "1":
        return False
    try:
        import triton.language as tl
    except ImportError:
        return False
    return type(tl.standard.argmax).__name__ == "InterpretedFunction"


HERE = _runs_here()

from slotsweep.nn import SlotConv2d, SlotLinear, triton_update  # noqa: E402
from slotsweep.nn.fused import fused_update, fused_update_reference  # noqa: E402

pytestmark = pytest.mark.skipif(not triton_update.available(), reason="triton not installed")
here = pytest.mark.skipif(not HERE, reason="Triton was imported first: run in a fresh process")
DEVICE = torch.device("cuda" if CUDA else "cpu")
SHAPES = {
    "linear": lambda k, sharing: SlotLinear(7, 5, k, sharing=sharing, fused=True, seed=k),
    "conv": lambda k, sharing: SlotConv2d(3, 4, 3, k, sharing=sharing, fused=True, seed=k),
}
SETTINGS = {"momentum+decay": (0.5, 0.9, 1e-3), "plain": (0.5, 0.0, 0.0)}


def _step_both(reference, kernel, gradient, state, lr, momentum, weight_decay):
    """One step of each layer from the same dense gradient; returns both momentum buffers."""
    for layer in (reference, kernel):
        layer.cached_weight.grad = gradient.clone()
    ref_buffer, kernel_buffer = state
    ref_buffer = fused_update_reference(reference, ref_buffer, lr, momentum, weight_decay)
    first = bool(momentum) and kernel_buffer is None
    if first:
        kernel_buffer = torch.empty_like(kernel.scores)
    triton_update.update(kernel, kernel_buffer, lr, momentum, weight_decay, first_step=first)
    return ref_buffer, kernel_buffer


@here
@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("sharing", ["none", "layer", "global"])
@pytest.mark.parametrize("k", [1, 2, 8, 64])
@pytest.mark.parametrize("shape", SHAPES)
def test_kernel_matches_the_reference(shape, k, sharing, setting):
    reference = SHAPES[shape](k, sharing).to(DEVICE)
    kernel = copy.deepcopy(reference)
    reference.refresh_cached_weight()
    kernel.refresh_cached_weight()
    assert CUDA or type(triton_update._kernel()).__name__ == "InterpretedFunction"
    generator = torch.Generator().manual_seed(k)
    state = (None, None)
    for _ in range(3):
        gradient = torch.randn(reference.weight_shape, generator=generator).to(DEVICE)
        state = _step_both(reference, kernel, gradient, state, *SETTINGS[setting])
        torch.testing.assert_close(kernel.scores, reference.scores, rtol=1e-6, atol=1e-7)
        if SETTINGS[setting][1]:
            torch.testing.assert_close(state[1], state[0], rtol=1e-6, atol=1e-7)
        assert torch.equal(kernel.selection_indices(), reference.selection_indices())
        assert torch.equal(kernel.cached_weight, reference.cached_weight)
        assert torch.equal(kernel.cached_weight, reference.selected_weight())


@here
def test_ties_go_to_the_lowest_index_as_argmax():
    """Equal top scores pick the first of them, as `torch.argmax` does."""
    reference = SlotLinear(4, 3, 8, fused=True).to(DEVICE)
    with torch.no_grad():
        reference.scores.zero_()
        reference.scores[..., 5] = 1.0
        reference.scores[..., 2] = 1.0
        reference.scores[0, 0, 7] = 1.0  # a tie after the first: still index 2
    kernel = copy.deepcopy(reference)
    reference.refresh_cached_weight()
    kernel.refresh_cached_weight()
    zero = torch.zeros(reference.weight_shape, device=DEVICE)
    _step_both(reference, kernel, zero, (None, None), 0.1, 0.0, 0.0)
    assert torch.equal(kernel.selection_indices(), torch.full((3, 4), 2, device=DEVICE))
    assert torch.equal(kernel.cached_weight, reference.cached_weight)


def test_cpu_layers_keep_the_native_or_pytorch_update():
    """The interpreter serves the tests only: a CPU layer's fused step is not Triton's."""
    layer = SlotLinear(4, 3, 2, fused=True)
    layer.refresh_cached_weight()
    layer.cached_weight.grad = torch.ones(layer.weight_shape)
    assert not triton_update.supports(layer)
    fused_update(layer, None, 0.1, 0.9, 0.0)
    assert layer.update_path in ("native", "pytorch")


def test_block_shape_covers_k_with_a_power_of_two():
    assert triton_update.block_shape(1) == (2048, 1)
    assert triton_update.block_shape(8) == (256, 8)
    assert triton_update.block_shape(9) == (128, 16)
    assert triton_update.block_shape(1024) == (2, 1024)


@pytest.mark.skipif(HERE, reason="the cases ran in this process")
def test_the_cases_in_a_fresh_interpreter():
    """This file in a process where TRITON_INTERPRET is set before Triton is imported."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parents[1],
        env={**os.environ, "TRITON_INTERPRET": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" in done.stdout  # this test, skipped there
