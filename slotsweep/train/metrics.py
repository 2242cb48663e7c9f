"""What a trial measures: training cost, memory, model size and what the network selects.

`training_cost_flops` counts the dense work with `torch.utils.flop_counter` (matrix products and
convolutions of one forward and backward pass, linear in the batch size) and adds, per step and
per connection, the work a layer family does beyond a dense network, as its layers state it
(`SelectingLayer.extra_flops_per_connection`: 2K-1 slot GS, 3K-1 slot PS, 4 edge-popup).
Optimiser updates, activations and normalisation are not counted, for any method alike.
"""

from __future__ import annotations

import hashlib
import math
import re
import resource
import sys
from pathlib import Path

import numpy as np
import psutil
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from slotsweep.data import DataSplits
from slotsweep.nn.family import SelectingLayer

SEED_BYTES = 8  # the seed that regenerates values (slot) or frozen weights (edge-popup)


def selecting_layers(model: nn.Module) -> list[nn.Module]:
    """Slot and edge-popup layers in definition order."""
    return [m for m in model.modules() if isinstance(m, SelectingLayer)]


def selection_states(model: nn.Module) -> list[torch.Tensor]:
    """Per layer, what it selects: slot indices or edge-popup masks (int64, on the CPU)."""
    return [layer.selection_state().cpu() for layer in selecting_layers(model)]


def selection_sha256(model: nn.Module) -> str | None:
    """sha256 of every layer's selected indices in order, as int64 little-endian bytes."""
    states = selection_states(model)
    if not states:
        return None
    digest = hashlib.sha256()
    for state in states:
        digest.update(state.numpy().astype("<i8", copy=False).tobytes())
    return digest.hexdigest()


def change_fraction(before: list[torch.Tensor], after: list[torch.Tensor]) -> float:
    """Fraction of connections whose selection differs between two `selection_states`."""
    total = sum(state.numel() for state in after)
    changed = sum(int((a != b).sum()) for a, b in zip(before, after, strict=True))
    return changed / total if total else 0.0


def dense_flops_per_example(model: nn.Module, example: torch.Tensor) -> float:
    """Forward+backward FLOPs of matmuls and convs for one example, counted on a small batch."""
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.train()
    with counter:
        model(example).sum().backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return counter.get_total_flops() / example.shape[0]


def extra_flops_per_step(model: nn.Module) -> int:
    """Selection and score-gradient work per step beyond the dense network (see module doc)."""
    return sum(
        layer.extra_flops_per_connection() * math.prod(layer.weight_shape)
        for layer in selecting_layers(model)
    )


def tensor_bytes(tensors: list[torch.Tensor | None]) -> int:
    """Bytes of the distinct storages among `tensors` (views and repeats counted once)."""
    seen: dict[tuple[str, int], int] = {}
    for tensor in tensors:
        if tensor is None or tensor.numel() == 0:
            continue
        storage = tensor.untyped_storage()
        seen[(str(tensor.device), storage.data_ptr())] = storage.nbytes()
    return sum(seen.values())


def memory_state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes training keeps: values and frozen weights, scores/weights, their gradients, momenta."""
    tensors: list[torch.Tensor | None] = list(model.buffers())
    for param in model.parameters():
        tensors += [param, param.grad]
    for layer in selecting_layers(model):
        cached = getattr(layer, "cached_weight", None)
        tensors += [cached, None if cached is None else cached.grad]
    for state in optimizer.state.values():
        tensors += [value for value in state.values() if isinstance(value, torch.Tensor)]
    return tensor_bytes(tensors)


def pack_indices(indices: torch.Tensor, bits: int) -> bytes:
    """Packs non-negative indices at `bits` bits each (most significant bit first)."""
    if bits == 0:
        return b""
    values = indices.flatten().cpu().numpy().astype(np.uint64)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    bit_matrix = ((values[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bit_matrix.reshape(-1)).tobytes()


def unpack_indices(data: bytes, bits: int, count: int) -> torch.Tensor:
    """Inverse of `pack_indices` for `count` indices."""
    if bits == 0:
        return torch.zeros(count, dtype=torch.int64)
    bit_array = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits]
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.int64)
    return torch.from_numpy(bit_array.reshape(count, bits).astype(np.int64) @ weights)


def index_bits(k: int) -> int:
    """Bits per connection to store one of K indices: ceil(log2 K)."""
    return math.ceil(math.log2(k)) if k > 1 else 0


def model_size_bytes(model: nn.Module) -> int:
    """Bytes to store the trained network for inference (slot: packed indices plus the seed)."""
    size = sum(
        buffer.nbytes
        for name, buffer in model.named_buffers()
        if name.endswith(("running_mean", "running_var"))
    )
    for layer in selecting_layers(model):
        size += len(pack_indices(layer.selection_state(), layer.index_bits())) + SEED_BYTES
    selecting = {id(p) for layer in selecting_layers(model) for p in layer.parameters()}
    size += sum(p.nbytes for p in model.parameters() if id(p) not in selecting)
    return size


def split_summaries(data: DataSplits, name: str) -> list[dict[str, object]]:
    """Per split: a name, its size, its shape and a sha256 of its images and labels (as stored:
    uint8 images, int64 little-endian labels), so runs on the same examples share a digest."""
    summaries = []
    for split_name in ("train", "val", "test"):
        split = getattr(data, split_name)
        digest = hashlib.sha256(split.images.contiguous().numpy().tobytes())
        digest.update(split.labels.numpy().astype("<i8", copy=False).tobytes())
        summaries.append(
            {
                "name": f"{name}-{split_name}",
                "split": split_name,
                "examples": len(split.labels),
                "shape": list(split.images.shape[1:]),
                "num_classes": data.num_classes,
                "digest": digest.hexdigest(),
            }
        )
    return summaries


class PeakMemory:
    """Peak memory of this trial: allocator peak on CUDA, process RSS peak on the CPU.

    `training_bytes` is what training adds above the footprint the process had when this object
    was made (before data and model were built): the RSS high-water mark since then, less that
    footprint. On Linux the kernel's high-water mark is reset here (/proc/self/clear_refs), so an
    earlier, larger peak of the same process (imports, a previous trial in a reused worker) does
    not hide this one; elsewhere the peak is sampled at the end only (a lower bound).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.hiwater_reset = _reset_hiwater()
        self.baseline_rss = psutil.Process().memory_info().rss
        self.peak_rss = self.baseline_rss
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            self.baseline_allocated = torch.cuda.memory_allocated(device)

    def sample(self) -> None:
        """Records the current RSS (called once per epoch)."""
        self.peak_rss = max(self.peak_rss, psutil.Process().memory_info().rss, _hiwater_rss())

    def peak_bytes(self) -> int:
        """The peak so far, in bytes."""
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        self.sample()
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
        return max(self.peak_rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)

    def training_bytes(self) -> int:
        """The peak above the footprint at construction (allocator peak above it on CUDA)."""
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device)) - self.baseline_allocated
        self.sample()
        return max(0, self.peak_rss - self.baseline_rss)


def _reset_hiwater() -> bool:
    """Resets the kernel's RSS high-water mark to the current RSS (Linux 4.0+); False elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _hiwater_rss() -> int:
    """The RSS high-water mark (VmHWM) in bytes on Linux, else 0."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else 0
