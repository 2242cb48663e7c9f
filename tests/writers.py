"""Writers of the on-disk formats the readers accept, for tests and small offline fixtures.

Test-only, so outside the package (tests import it as `writers`, beside `helpers`)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import torch

from slotsweep.data.cifar import TEST_FILES, TRAIN_FILES
from slotsweep.data.idx import IMAGES_MAGIC, LABELS_MAGIC, STEMS
from slotsweep.data.splits import Split


def write_idx(path: Path, array: torch.Tensor, magic: int, *, gz: bool = False) -> Path:
    """Write uint8 `array` as an IDX file (gzipped to `path`.gz if `gz`); return the path."""
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.to(torch.uint8).contiguous().numpy().tobytes()
    if gz:
        path, payload = path.with_name(f"{path.name}.gz"), gzip.compress(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def write_idx_folder(folder: Path, train: Split, test: Split, *, gz: bool = False) -> None:
    """The four MNIST-style files of 1-channel `train` and `test` in `folder`."""
    for part, split in (("train", train), ("test", test)):
        image_stem, label_stem = STEMS[part]
        write_idx(folder / image_stem, split.images.squeeze(1), IMAGES_MAGIC, gz=gz)
        write_idx(folder / label_stem, split.labels, LABELS_MAGIC, gz=gz)


def write_unreadable_idx_folder(folder: Path) -> Path:
    """The four MNIST file names holding no IDX data: found by pre-flight, unreadable by a
    trial."""
    folder.mkdir(parents=True, exist_ok=True)
    for stems in STEMS.values():
        for stem in stems:
            (folder / stem).write_bytes(b"not idx")
    return folder


def write_cifar_folder(folder: Path, train: Split, test: Split) -> None:
    """`train` in five pickled batches and `test` in test_batch, in torchvision's format."""
    folder.mkdir(parents=True, exist_ok=True)
    per_batch = -(-len(train) // len(TRAIN_FILES))
    for number, name in enumerate(TRAIN_FILES):
        write_cifar_batch(
            folder / name, train.select(slice(number * per_batch, (number + 1) * per_batch))
        )
    write_cifar_batch(folder / TEST_FILES[0], test)


def write_cifar_batch(path: Path, split: Split) -> None:
    """One batch as CIFAR-10's python pickle: b"data" N x 3072 uint8 and b"labels" a list."""
    batch = {
        b"data": split.images.reshape(len(split), -1).numpy(),
        b"labels": split.labels.tolist(),
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))
