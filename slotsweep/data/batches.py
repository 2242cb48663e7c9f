"""Mini-batches from an in-memory split: shuffled per epoch, augmented, normalised, on device."""

from __future__ import annotations

import math
import mmap
from collections.abc import Iterator, Sequence

import torch

from slotsweep.seeding import epoch_generator

from .augment import random_flip_crop
from .splits import Split


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
        # took 10-13% of a Lenet epoch on one thread (k_scan). `bench/bench_data.py` times the
        # current path.
        images = split.images.to(self.device)
        if augment:  # uint8, normalised per batch after augmentation
            self._images = images
        else:
            self._images = self._normalise(images, out=_huge_page_empty(images.shape, self.device))
        self._labels = split.labels.to(self.device)

    def _normalise(self, images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return torch.addcmul(self._offset, images, self._scale, out=out)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; (seed, epoch) fixes the next pass's order and augmentation."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self._labels) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not len(self._labels):  # split() of an empty tensor gives one empty chunk
            return
        generator = epoch_generator(self.seed, self.epoch)
        if self.shuffle:
            order = torch.randperm(len(self._labels), generator=generator).to(self.device)
            # The labels are gathered once per epoch: a batch then costs one gather, its images.
            labels = self._labels.index_select(0, order).split(self.batch_size)
            images = (self._images.index_select(0, index) for index in order.split(self.batch_size))
        else:
            labels = self._labels.split(self.batch_size)
            images = self._images.split(self.batch_size)
        for batch_images, batch_labels in zip(images, labels, strict=True):
            if self.augment:
                batch_images = self._normalise(random_flip_crop(batch_images, generator))
            yield batch_images, batch_labels


HUGE_PAGE = 2 << 20


def _huge_page_empty(shape: torch.Size, device: torch.device) -> torch.Tensor:
    """An empty float32 tensor for the normalised split; on the CPU it lies in huge pages:
    batches gather rows at random from the whole split, and with 4 KB pages nearly every row
    missed the TLB.

    The memory is an anonymous mapping that asks Linux for transparent huge pages (madvise);
    elsewhere it is ordinary memory. Together with gathering the labels once per epoch, this took a
    fetch between 1-thread Lenet steps from 112 microseconds to 88 (`bench/bench_data.py`).
    """
    if device.type != "cpu":
        return torch.empty(shape, device=device)
    nbytes = math.prod(shape) * 4
    if hasattr(mmap, "MAP_ANONYMOUS"):  # private: a shared mapping never gets huge pages
        region = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    else:
        region = mmap.mmap(-1, nbytes + HUGE_PAGE)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        region.madvise(mmap.MADV_HUGEPAGE)
    raw = torch.frombuffer(region, dtype=torch.uint8)  # the tensor keeps the mapping alive
    start = -raw.data_ptr() % HUGE_PAGE
    return raw[start : start + nbytes].view(torch.float32).view(shape)
