"""Reader for the IDX files of MNIST-like sets (plain or gzip), and their folder layout."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from .errors import DataFormatError
from .splits import Split

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path, magic: int) -> torch.Tensor:
    """The uint8 array stored in IDX file `path`, checked against the expected `magic`."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            # bytearray keeps the buffer writable, so torch can share it without a copy.
            data = bytearray(file.read())
    except (OSError, EOFError) as error:  # gzip raises these on a damaged stream
        raise DataFormatError(path, f"cannot read: {error}") from error
    if len(data) < 4 or int.from_bytes(data[:4], "big") != magic:
        found = data[:4].hex() or "nothing"
        raise DataFormatError(path, f"not an IDX file: magic number {found}, expected {magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(path, "truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(dims)):
        raise DataFormatError(
            path, f"holds {len(data) - header} bytes of data, dims {dims} need {int(np.prod(dims))}"
        )
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims))


def find_file(folder: Path, stem: str) -> Path | None:
    """`folder/stem`, else `folder/stem.gz`, else None (plain first: it reads faster)."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def has_idx_files(folder: Path) -> bool:
    """Whether `folder` holds all four MNIST-style files."""
    return all(find_file(folder, stem) for pair in STEMS.values() for stem in pair)


def read_idx_folder(folder: Path) -> tuple[Split, Split]:
    """(train, test) from the four MNIST-style IDX files in `folder`."""
    return _read_pair(folder, "train"), _read_pair(folder, "test")


def _read_pair(folder: Path, part: str) -> Split:
    image_stem, label_stem = STEMS[part]
    image_path, label_path = find_file(folder, image_stem), find_file(folder, label_stem)
    if image_path is None or label_path is None:
        raise FileNotFoundError(f"{folder} lacks {image_stem} or {label_stem}")
    images = read_idx(image_path, IMAGES_MAGIC)
    labels = read_idx(label_path, LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(
            label_path,
            f"{labels.shape[0]} labels for {images.shape[0]} images in {image_path.name}",
        )
    return Split(images.unsqueeze(1), labels.long())
