"""Mini-batches from an in-memory split: shuffled per epoch, augmented, normalised, on device."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .augment import random_flip_crop
from .splits import Split


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 64-bit seed for (seed, epoch), so nearby pairs give unrelated orders."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0])


class BatchLoader:
    """Iterates (x, y): x float32 normalised on `device`, y int64 on `device`.

    The order and augmentation depend only on (seed, epoch); call set_epoch each epoch.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        shuffle: bool,
        augment: bool = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        channels = split.images.shape[1]
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"mean and std need {channels} values, got {len(mean)}, {len(std)}")
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.device = torch.device(device)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        # (x / 255 - mean) / std folded into one multiply-add on the raw uint8 pixels.
        self._scale = (1 / (255 * std_t)).to(self.device)
        self._offset = (-mean_t / std_t).to(self.device)
        # The whole split moves to the device once. Without augmentation it is also normalised
        # once, so a batch costs one gather: the per-batch convert and normalise of uint8 pixels
        # took 10-13% of a Lenet epoch on one thread (k_scan), this takes about 2%.
        images = split.images.to(self.device)
        self._images = images if augment else self._normalise(images)
        self._labels = split.labels.to(self.device)

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self._offset, images, self._scale)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; (seed, epoch) fixes the next pass's order and augmentation."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.split) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        count = len(self.split)
        order = torch.randperm(count, generator=generator) if self.shuffle else None
        if order is not None:
            order = order.to(self.device)
        for start in range(0, count, self.batch_size):
            if order is None:
                images = self._images[start : start + self.batch_size]
                labels = self._labels[start : start + self.batch_size]
            else:
                index = order[start : start + self.batch_size]
                images = self._images.index_select(0, index)
                labels = self._labels.index_select(0, index)
            if self.augment:
                images = self._normalise(random_flip_crop(images, generator))
            yield images, labels
