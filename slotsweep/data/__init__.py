"""Offline-first data: MNIST, Fashion-MNIST, CIFAR-10 and a synthetic set, as in-memory splits."""

from .batches import BatchLoader
from .errors import DataFormatError, DataNotFoundError
from .load import load_data
from .splits import DataSplits, Split

__all__ = [
    "BatchLoader",
    "DataFormatError",
    "DataNotFoundError",
    "DataSplits",
    "Split",
    "load_data",
]
