"""Per-process device settings of a trial: matmul and convolution precision, a GPU memory cap."""

from __future__ import annotations

import torch

from slotsweep.registry import PRECISIONS


def apply_precision(precision: str, device: torch.device) -> None:
    """Sets CUDA's TF32 switches for matmuls and cuDNN convolutions from the trial's
    `precision` (`registry.PRECISIONS`); the CPU computes in float32 either way. The switches are
    per process, so every trial sets them (a reused worker's earlier trial may have another)."""
    PRECISIONS.get(precision)
    if device.type != "cuda":
        return
    # the switches torch 2.11 and 2.14 both honour (2.9 added `fp32_precision`, kept in step)
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def cap_gpu_memory(share: float, device: int | torch.device = 0) -> bool:
    """Caps this process's CUDA allocations to `share` of `device`'s memory, as a trial given
    a fractional GPU (`resources: {gpu: 0.125}`) must stay within (Ray shares the GPU but not
    its memory): an allocation beyond raises CUDA's out-of-memory error in this trial only.
    Returns whether a cap was set (not for a whole GPU or more, nor without CUDA)."""
    if not 0 < share < 1 or not torch.cuda.is_available():
        return False
    torch.cuda.set_per_process_memory_fraction(share, device)
    return True
