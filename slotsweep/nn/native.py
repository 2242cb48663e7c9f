"""The native fused slot update: a small C kernel loaded with ctypes.

The kernel (`fused_kernel.c`) reads each connection's K values, scores and momentum once, writes
the scores, the momentum and the newly selected weight, and picks the argmax on the way, where
the PyTorch reference makes several passes and a slow argmax over a short innermost dimension.
It is built when the package is installed (`setup.py`, the `_slot_kernel` extension beside this
file, for the installing machine's CPU). Where that build is missing, or was made for another
CPU or another version of the source, it is compiled at run time, once per machine, into
`$SLOTSWEEP_CACHE` (default ~/.cache/slotsweep/kernels). Without either, or with
`SLOTSWEEP_NATIVE=0`, `available()` is False and callers fall back to
`slotsweep.nn.fused.fused_update_reference`; `SLOTSWEEP_NATIVE=runtime` skips the prebuilt one.
`update_tag` says which update a trained model's layers ran.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import nn

from slotsweep.nn.family import SelectingLayer
from slotsweep.nn.kernel_build import COMPILER, FLAG_SETS, PREBUILT_NAME, SOURCE, build_identity
from slotsweep.nn.selection import score_gradient as reference_score_gradient

logger = logging.getLogger(__name__)

LINK_FLAGS = ("-shared", "-fPIC")
MODES = {"plain": 0, "first": 1, "momentum": 2}
ORIGINS = {"prebuilt": "fused-native-prebuilt", "runtime": "fused-runtime-build"}

_ARGTYPES = (
    [ctypes.c_void_p] * 5
    + [ctypes.c_int64, ctypes.c_int64, ctypes.c_int]
    + [ctypes.c_float] * 3
    + [ctypes.c_int] * 3
)
_SIZES = [ctypes.c_int64, ctypes.c_int64, ctypes.c_int, ctypes.c_int]  # rows, k, shared, threads
_SELECT_ARGTYPES = [ctypes.c_void_p] * 4 + _SIZES  # scores, values, weight, indices
_GRADIENT_ARGTYPES = [ctypes.c_void_p] * 3 + _SIZES  # grad, values, out


def cache_dir() -> Path:
    """Where built kernels live: $SLOTSWEEP_CACHE, else ~/.cache/slotsweep/kernels."""
    configured = os.environ.get("SLOTSWEEP_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "slotsweep" / "kernels"


def _library_path(source: bytes, flags: tuple[str, ...]) -> Path:
    identity = build_identity(source, flags, COMPILER)
    return cache_dir() / f"slot_update-{platform.machine()}-{identity}.so"


def prebuilt_path() -> Path | None:
    """The kernel built at install (`setup.py`), wherever it is."""
    here = Path(__file__).parent
    found = (here / f"{PREBUILT_NAME}{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES)
    return next((path for path in found if path.exists()), None)


def _open_prebuilt(path: Path) -> ctypes.CDLL | None:
    """The prebuilt kernel, if it was built from this source for this CPU (else None)."""
    library = ctypes.CDLL(str(path))
    library.slot_kernel_identity.restype = ctypes.c_char_p
    built = library.slot_kernel_identity().decode()
    source = SOURCE.read_bytes()
    if not any(build_identity(source, flags) == built for flags in FLAG_SETS):
        logger.info("prebuilt kernel %s is for another CPU or source: building one", path)
        return None
    return _open(path)


def _compile(flags: tuple[str, ...], target: Path) -> str | None:
    """Builds `target`; returns None, or why it failed. Writes a temporary file then renames it,
    so processes starting together never load a half-written library."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".build-", suffix=".so")
    os.close(handle)
    try:
        command = [COMPILER, *flags, *LINK_FLAGS, "-o", temporary, str(SOURCE), "-lm"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}"
        os.replace(temporary, target)
        return None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _build() -> Path:
    """The path of a built kernel, compiling it if this machine has none yet."""
    if shutil.which(COMPILER) is None:
        raise RuntimeError(f"C compiler {COMPILER!r} not found")
    source = SOURCE.read_bytes()
    failures = []
    for flags in FLAG_SETS:
        target = _library_path(source, flags)
        if target.exists():
            return target
        failure = _compile(flags, target)
        if failure is None:
            return target
        failures.append(failure)
    raise RuntimeError(failures[-1])


def _open(path: Path) -> ctypes.CDLL:
    library = ctypes.CDLL(str(path))
    for name, argtypes in (
        ("slot_update", _ARGTYPES),
        ("slot_select", _SELECT_ARGTYPES),
        ("slot_score_gradient", _GRADIENT_ARGTYPES),
    ):
        getattr(library, name).argtypes = argtypes
        getattr(library, name).restype = ctypes.c_int
    return library


@functools.cache
def _load() -> tuple[ctypes.CDLL | None, str | None, str | None]:
    """(the loaded kernel, its origin 'prebuilt' or 'runtime', why not), once per process."""
    prebuilt = None if os.environ.get("SLOTSWEEP_NATIVE") == "runtime" else prebuilt_path()
    if prebuilt is not None:
        try:
            library = _open_prebuilt(prebuilt)
        except (OSError, AttributeError) as error:
            logger.warning("prebuilt kernel %s does not load (%s); building one", prebuilt, error)
            library = None
        if library is not None:
            return library, "prebuilt", None
    try:
        return _open(_build()), "runtime", None
    except (OSError, AttributeError, RuntimeError, subprocess.SubprocessError) as error:
        logger.warning("native slot kernel unavailable, using the PyTorch update: %s", error)
        return None, None, str(error)


def origin() -> str | None:
    """Where the loaded kernel comes from: 'prebuilt' (at install), 'runtime' (built now)."""
    return _load()[1] if available() else None


def update_tag(model: nn.Module) -> str:
    """Which update the fused slot layers of a trained `model` ran (`slotsweep.impl`):
    `fused-triton` (the Triton kernel, CUDA), `fused-native-prebuilt` or `fused-runtime-build`
    (the native kernel, CPU), `fused-pytorch` (the fused update in PyTorch: no kernel, or layers
    no kernel serves), `fused-mixed` (more than one of these)."""
    paths = {
        getattr(m, "update_path", None)
        for m in model.modules()
        if isinstance(m, SelectingLayer) and getattr(m, "fused", False)  # slot layers
    } - {None}  # a layer that never stepped ran no update
    if len(paths) > 1:
        return "fused-mixed"
    if paths == {"native"}:
        return ORIGINS[_load()[1]]
    return "fused-triton" if paths == {"triton"} else "fused-pytorch"


def available() -> bool:
    """Whether the native kernel is enabled (SLOTSWEEP_NATIVE is not 0) and built and loaded."""
    return unavailable_reason() is None


def unavailable_reason() -> str | None:
    """Why `available()` is False, or None when it is True."""
    if os.environ.get("SLOTSWEEP_NATIVE", "1") == "0":
        return "disabled by SLOTSWEEP_NATIVE=0"
    return _load()[2]


def _plain(tensor: torch.Tensor | None) -> bool:
    return (
        tensor is not None
        and tensor.device.type == "cpu"
        and tensor.dtype == torch.float32
        and tensor.is_contiguous()
    )


def supports(layer: SelectingLayer) -> bool:
    """Whether the kernel can update this layer: CPU float32 contiguous scores, values and
    cached weight (the momentum buffer is checked by `update`), and the kernel available."""
    scores, values, weight = layer.scores, layer.values, layer.cached_weight
    if not (_plain(scores) and _plain(values) and _plain(weight)):
        return False
    return shapes_fit(scores, values, weight) and available()


def shapes_fit(scores: torch.Tensor, values: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether values and cached weight are shaped for `scores`, as both kernels require: they
    trust these shapes, and a mismatch would write outside the tensors."""
    return _values_fit(scores, values) and weight.shape == scores.shape[:-1]


def _values_fit(scores: torch.Tensor, values: torch.Tensor) -> bool:
    """Values (*w, K) as the scores, or (K,) shared by every connection."""
    return values.shape == scores.shape or values.shape == scores.shape[-1:]


def kernel_mode(momentum: float, first_step: bool) -> int:
    """The kernels' MODE for a step: plain without momentum, else first or later momentum step."""
    return MODES["plain"] if not momentum else MODES["first" if first_step else "momentum"]


def step_inputs(
    layer: SelectingLayer, buffer: torch.Tensor | None, momentum: float, first_step: bool
) -> tuple[torch.Tensor, int]:
    """(the cached weight's gradient, contiguous; the kernel MODE) for a step of either kernel,
    which trusts these shapes: raises ValueError when the gradient is not float32 shaped like
    the weight, or a momentum step's `buffer` not float32 shaped like the scores."""
    weight = layer.cached_weight
    grad = weight.grad.contiguous()  # autograd gives a leaf's gradient the leaf's layout: no copy
    if grad.shape != weight.shape or grad.dtype != torch.float32:
        raise ValueError("the cached weight's gradient must be float32 shaped like the weight")
    mode = kernel_mode(momentum, first_step)
    if mode != MODES["plain"] and (
        buffer is None or buffer.shape != layer.scores.shape or buffer.dtype != torch.float32
    ):
        raise ValueError("momentum needs a float32 buffer shaped like the scores")
    return grad, mode


def update(
    layer: SelectingLayer,
    buffer: torch.Tensor | None,
    lr: float,
    momentum: float,
    weight_decay: float,
    first_step: bool,
) -> None:
    """The fused step of `layer` in place (scores, `buffer`, cached weight), for a layer that
    `supports` accepts. `buffer` is the momentum buffer, overwritten on the first step; it is
    ignored (may be None) when momentum is 0, as in `fused_update_reference`."""
    scores, values, weight = layer.scores.data, layer.values, layer.cached_weight
    grad, mode = step_inputs(layer, buffer, momentum, first_step)
    work = None
    if mode != MODES["plain"]:
        work = buffer if buffer.is_contiguous() else buffer.contiguous()
    status = _load()[0].slot_update(
        scores.data_ptr(),
        values.data_ptr(),
        None if work is None else work.data_ptr(),
        grad.data_ptr(),
        weight.data_ptr(),
        grad.numel(),
        layer.k,
        values.dim() == 1,
        lr,
        momentum,
        weight_decay,
        mode,
        bool(weight_decay),
        torch.get_num_threads(),
    )
    if status != 0:
        raise RuntimeError(f"native slot kernel rejected its arguments (status {status})")
    if work is not None and work is not buffer:
        buffer.copy_(work)


def serves(scores: torch.Tensor, values: torch.Tensor) -> bool:
    """Whether `select` and `score_gradient` serve these tensors: CPU float32 contiguous scores
    (*w, K) and values (*w, K) or (K,), and the kernel available (else the PyTorch path)."""
    return _plain(scores) and _plain(values) and _values_fit(scores, values) and available()


def _sizes(scores: torch.Tensor, values: torch.Tensor) -> tuple[int, int, bool, int]:
    k = scores.shape[-1]
    return scores.numel() // k, k, values.dim() == 1, torch.get_num_threads()


def select(
    scores: torch.Tensor, values: torch.Tensor, with_indices: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The greedy selection in one pass, for tensors `serves` accepts: the weight
    `values[..., argmax(scores)]` (ties to the lowest index, as `torch.argmax`) and, if asked,
    the int64 indices."""
    weight = torch.empty(scores.shape[:-1], dtype=scores.dtype)
    indices = torch.empty(scores.shape[:-1], dtype=torch.int64) if with_indices else None
    status = _load()[0].slot_select(
        scores.data_ptr(),
        values.data_ptr(),
        weight.data_ptr(),
        None if indices is None else indices.data_ptr(),
        *_sizes(scores, values),
    )
    if status != 0:
        raise RuntimeError(f"native slot selection rejected its arguments (status {status})")
    return weight, indices


def score_gradient(weight_grad: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`selection.score_gradient` in one pass, for values `serves` accepted (float32 CPU
    contiguous): grad s_ijk = (dL/dW_ij) * W_ijk, shape (*weight_grad.shape, K)."""
    grad = weight_grad.to(torch.float32).contiguous()
    if values.dim() > 1 and values.shape[:-1] != grad.shape:  # the kernel trusts the shapes
        raise ValueError(f"a gradient of shape {tuple(grad.shape)} for values {values.shape}")
    out = torch.empty((*grad.shape, values.shape[-1]), dtype=torch.float32)
    status = _load()[0].slot_score_gradient(
        grad.data_ptr(), values.data_ptr(), out.data_ptr(), *_sizes(out, values)
    )
    if status != 0:
        raise RuntimeError(f"native score gradient rejected its arguments (status {status})")
    return out


class GreedyWeight(torch.autograd.Function):
    """`selection.SelectWeight` of the greedy indices, both directions native: the forward
    selects without materialising the indices, the backward writes the score gradient in one
    pass. Only for tensors `serves` accepts."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, values: torch.Tensor):  # noqa: ANN001, ANN205
        ctx.save_for_backward(values)
        return select(scores.detach(), values)[0]

    @staticmethod
    def backward(ctx, weight_grad: torch.Tensor):  # noqa: ANN001, ANN205
        (values,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a gradient autograd can differentiate
            return reference_score_gradient(weight_grad, values), None
        return score_gradient(weight_grad, values), None
