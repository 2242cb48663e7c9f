"""In-memory splits of a data set, the seeded validation split and per-channel statistics."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from slotsweep.seeding import data_generator


@dataclass(frozen=True, eq=False)  # tensors compare elementwise, not as one value
class Split:
    """Images (uint8, N x C x H x W) and their labels (int64, N), held in memory."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be uint8 N x C x H x W, got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be int64 of shape ({self.images.shape[0]},), got "
                f"{self.labels.dtype} {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    def select(self, index: torch.Tensor | slice) -> Split:
        """The examples at `index`, as a new split."""
        return Split(self.images[index], self.labels[index])


@dataclass(frozen=True, eq=False)
class DataSplits:
    """Train, validation and test splits plus what training needs to know about them."""

    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]  # per channel, 0..1 scale, from the train split only
    std: tuple[float, ...]
    augment: bool  # whether training should flip and crop (CIFAR-10)


def split_validation(train: Split, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """(train, val): a seeded random `val_fraction` of `train` held out, the rest kept."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(train)
    n_val = round(n * val_fraction)
    if not 0 < n_val < n:
        raise ValueError(f"val_fraction {val_fraction} of {n} examples leaves an empty split")
    order = torch.randperm(n, generator=data_generator(seed))
    return train.select(order[n_val:]), train.select(order[:n_val])


def take_first(split: Split, count: int) -> Split:
    """The first `count` examples of `split` (for quick runs)."""
    if not 0 < count <= len(split):
        raise ValueError(f"train_subset must be in 1..{len(split)}, got {count}")
    return split.select(slice(0, count))


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images on the 0..1 scale."""
    means, stds = [], []
    values = torch.arange(256, dtype=torch.float64) / 255
    for channel in range(images.shape[1]):
        # A 256-bin histogram gives exact moments without a float copy of the whole set.
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        counts /= counts.sum()
        mean = float((counts * values).sum())
        var = float((counts * (values - mean) ** 2).sum())
        means.append(mean)
        stds.append(max(var**0.5, 1e-6))  # a constant channel must not divide by zero
    return tuple(means), tuple(stds)
