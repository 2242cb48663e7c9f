"""The fused slot update on the GPU: one Triton kernel per layer.

Each program takes a block of connections and all K of each: it reads the candidate values, the
scores and the momentum once, and writes the scores, the momentum and the newly selected weight
once, with the arithmetic of `slotsweep.nn.fused.fused_update_reference` (weight decay, momentum,
the step, the argmax with ties to the lowest index as `torch.argmax` breaks them). The reference
makes about a dozen passes over every K-sized array.

Triton decides at decoration time whether a kernel is compiled or interpreted
(`TRITON_INTERPRET=1`, which runs it on CPU tensors with numpy: how the tests check it without a
GPU), so the kernel is decorated on first use, not at import.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

from slotsweep.nn.native import MODES, shapes_fit, step_inputs
from slotsweep.nn.slot import SlotMixin

BLOCK_ELEMENTS = 2048  # scores per program: BLOCK_N connections x BLOCK_K (K rounded up to 2^n)
# The interpreter runs each program with numpy: fewer, larger programs (same results)
INTERPRETED_BLOCK_ELEMENTS = 1 << 16


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.cache
def available() -> bool:
    """Whether Triton is installed (the kernel needs a CUDA device, or the interpreter)."""
    return importlib.util.find_spec("triton") is not None


@functools.cache
def _kernel():  # noqa: ANN202 - a triton.JITFunction, typed only when triton is imported
    import triton
    import triton.language as tl

    @triton.jit
    def slot_update(
        scores_ptr,
        values_ptr,
        buffer_ptr,
        grad_ptr,
        weight_ptr,
        n,
        k,
        lr,
        momentum,
        weight_decay,
        SHARED: tl.constexpr,
        MODE: tl.constexpr,
        DECAY: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ):
        rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
        cols = tl.arange(0, BLOCK_K)
        row_ok = rows < n
        col_ok = cols < k
        inside = row_ok[:, None] & col_ok[None, :]
        offsets = rows[:, None] * k + cols[None, :]
        scores = tl.load(scores_ptr + offsets, mask=inside, other=0.0)
        if SHARED:
            values = tl.load(values_ptr + cols, mask=col_ok, other=0.0)[None, :]
        else:
            values = tl.load(values_ptr + offsets, mask=inside, other=0.0)
        grad = tl.load(grad_ptr + rows, mask=row_ok, other=0.0)[:, None] * values
        if DECAY:
            grad = grad + weight_decay * scores
        if MODE == 1:  # the first momentum step: the buffer starts as the gradient
            tl.store(buffer_ptr + offsets, grad, mask=inside)
        if MODE == 2:
            buffer = tl.load(buffer_ptr + offsets, mask=inside, other=0.0)
            grad = buffer * momentum + grad
            tl.store(buffer_ptr + offsets, grad, mask=inside)
        scores = scores - lr * grad
        tl.store(scores_ptr + offsets, scores, mask=inside)
        ranked = tl.where(inside, scores, float("-inf"))
        chosen = tl.argmax(ranked, axis=1, tie_break_left=True)
        picked = cols[None, :] == chosen[:, None]
        weight = tl.sum(tl.where(picked, values, 0.0), axis=1)
        tl.store(weight_ptr + rows, weight, mask=row_ok)

    return slot_update


def _fits(tensor: torch.Tensor | None, device: torch.device) -> bool:
    return (
        tensor is not None
        and tensor.device == device
        and tensor.dtype == torch.float32
        and tensor.is_contiguous()
    )


def supports(layer: SlotMixin) -> bool:
    """Whether the kernel can update this layer: CUDA float32 contiguous scores, values and
    cached weight, and Triton installed. CPU layers go to the native kernel even under the
    interpreter (`update` itself runs them there: what the tests do)."""
    scores, values, weight = layer.scores, layer.values, layer.cached_weight
    if not scores.is_cuda:
        return False
    if not all(_fits(t, scores.device) for t in (scores, values, weight)):
        return False
    return shapes_fit(scores, values, weight) and available()


def block_shape(k: int, elements: int = BLOCK_ELEMENTS) -> tuple[int, int]:
    """(connections, K slots) per program: K rounded up to a power of two, `elements` scores."""
    block_k = 1 << max(0, (k - 1).bit_length())
    return max(1, elements // block_k), block_k


def update(
    layer: SlotMixin,
    buffer: torch.Tensor | None,
    lr: float,
    momentum: float,
    weight_decay: float,
    first_step: bool,
) -> None:
    """The fused step of `layer` in place (scores, `buffer`, cached weight), for a layer that
    `supports` accepts; `buffer` as in `slotsweep.nn.native.update`."""
    scores, values, weight = layer.scores.data, layer.values, layer.cached_weight
    grad, mode = step_inputs(layer, buffer, momentum, first_step)
    if mode != MODES["plain"] and not _fits(buffer, scores.device):  # the kernel writes it in place
        raise ValueError("momentum needs a contiguous buffer on the scores' device")
    n, k = grad.numel(), layer.k
    block_n, block_k = block_shape(
        k, INTERPRETED_BLOCK_ELEMENTS if interpreting() else BLOCK_ELEMENTS
    )
    grid = ((n + block_n - 1) // block_n,)
    _kernel()[grid](
        scores,
        values,
        scores if buffer is None else buffer,  # never touched in plain mode
        grad,
        weight.data,
        n,
        k,
        float(lr),
        float(momentum),
        float(weight_decay),
        SHARED=values.dim() == 1,
        MODE=mode,
        DECAY=bool(weight_decay),
        BLOCK_N=block_n,
        BLOCK_K=block_k,
    )
