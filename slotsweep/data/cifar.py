"""Reader for CIFAR-10 in torchvision's python format (pickled batches)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from .errors import DataFormatError
from .splits import Split

FOLDER = "cifar-10-batches-py"  # what torchvision's CIFAR10 unpacks to
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)


def has_cifar_files(folder: Path) -> bool:
    """Whether `folder` holds the five training batches and the test batch."""
    return all((folder / name).is_file() for name in TRAIN_FILES + TEST_FILES)


def read_cifar_folder(folder: Path) -> tuple[Split, Split]:
    """(train, test) from the pickled CIFAR-10 batches in `folder`."""
    return _read_batches(folder, TRAIN_FILES), _read_batches(folder, TEST_FILES)


def read_batch(path: Path) -> Split:
    """One pickled batch: b"data" (N x 3072 uint8, channel-major) and b"labels"."""
    try:
        with open(path, "rb") as file:
            # The files are Python 2 pickles; bytes keys keep the arrays intact.
            batch = pickle.load(file, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as error:
        raise DataFormatError(path, f"not a CIFAR-10 batch: {error!r}") from error
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataFormatError(
            path,
            f"data {data.shape} and {len(labels)} labels do not form N x 3072 images with N labels",
        )
    return Split(torch.from_numpy(data.reshape(-1, 3, 32, 32)), torch.from_numpy(labels))


def _read_batches(folder: Path, names: tuple[str, ...]) -> Split:
    batches = [read_batch(folder / name) for name in names]
    return Split(torch.cat([b.images for b in batches]), torch.cat([b.labels for b in batches]))
