"""A small learnable data set made from a seed, so tests and smoke runs need no files."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from slotsweep.seeding import data_generator

from .splits import Split

NUM_CLASSES = 10
SIZE = 28
NOISE_STD = 70.0  # pixel noise (0..255 scale): hides single pixels, keeps classes separable


def make_synthetic(seed: int, n_train: int = 2000, n_test: int = 500) -> tuple[Split, Split]:
    """(train, test) of 1x28x28 uint8 images: one smooth prototype per class plus noise."""
    generator = data_generator(seed)
    # Upsampled 7x7 noise gives blob-like prototypes that a small MLP tells apart quickly.
    coarse = torch.rand(NUM_CLASSES, 1, 7, 7, generator=generator)
    prototypes = 255 * F.interpolate(
        coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False
    )

    def draw(count: int) -> Split:
        labels = torch.randint(0, NUM_CLASSES, (count,), generator=generator)
        noise = NOISE_STD * torch.randn(count, 1, SIZE, SIZE, generator=generator)
        images = (prototypes[labels] + noise).round().clamp(0, 255).to(torch.uint8)
        return Split(images, labels)

    return draw(n_train), draw(n_test)
