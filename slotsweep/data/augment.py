"""Batch-wide CIFAR augmentation on uint8 tensors: random horizontal flip and padded crop."""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAD = 4  # zero padding around each image before cropping back to its size


def flip_crop(
    images: torch.Tensor, flips: torch.Tensor, offsets: torch.Tensor, pad: int = PAD
) -> torch.Tensor:
    """Each image cropped at its (row, col) offset from the zero-padded batch, mirrored if flipped.

    An offset of (pad, pad) without flip returns the image unchanged.
    """
    batch, channels, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    row_steps = torch.arange(height, device=images.device)
    col_steps = torch.arange(width, device=images.device)
    rows = offsets[:, :1] + row_steps  # (B, H)
    # Reading the crop window right-to-left is the flip, so one gather does both.
    cols = offsets[:, 1:] + torch.where(flips[:, None], width - 1 - col_steps, col_steps)
    # One flat gather per image plane: several times faster than 4-d advanced indexing.
    flat = rows[:, :, None] * (width + 2 * pad) + cols[:, None, :]  # (B, H, W)
    flat = flat.view(batch, 1, height * width).expand(batch, channels, height * width)
    return padded.view(batch, channels, -1).gather(2, flat).view(batch, channels, height, width)


def random_flip_crop(
    images: torch.Tensor, generator: torch.Generator, pad: int = PAD
) -> torch.Tensor:
    """flip_crop with flips (p=0.5) and offsets (0..2*pad) drawn per image from `generator`."""
    batch = images.shape[0]
    flips = torch.rand(batch, generator=generator) < 0.5
    offsets = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator)
    if images.is_cuda:  # from pinned memory the copies do not wait for the GPU (no host sync)
        flips, offsets = flips.pin_memory(), offsets.pin_memory()
    device = images.device
    return flip_crop(
        images, flips.to(device, non_blocking=True), offsets.to(device, non_blocking=True), pad
    )
