"""load_data: find, read, subset and split a named data set."""

from __future__ import annotations

from .catalog import DatasetSpec, get_spec
from .cifar import read_cifar_folder
from .idx import read_idx_folder
from .locate import locate
from .splits import DataSplits, Split, channel_stats, split_validation, take_first
from .synthetic import make_synthetic

READERS = {"idx": read_idx_folder, "cifar": read_cifar_folder}


def load_data(
    name: str,
    data_root: str | None = None,
    *,
    seed: int = 0,
    val_fraction: float | None = None,
    train_subset: int | None = None,
    download: bool = True,
) -> DataSplits:
    """Train/val/test splits of data set `name`, with the train split's per-channel mean and std.

    The validation split is a `seed`-fixed random share (`val_fraction`, else the paper's: 15%
    for the 28x28 sets, 10% for CIFAR-10) of the first `train_subset` training examples.
    """
    spec = get_spec(name)
    train, test = _read(spec, data_root, seed=seed, download=download)
    if train_subset is not None:
        train = take_first(train, train_subset)
    fraction = spec.val_fraction if val_fraction is None else val_fraction
    train, val = split_validation(train, fraction, seed)
    mean, std = channel_stats(train.images)
    return DataSplits(train, val, test, spec.num_classes, mean, std, spec.augment)


def _read(
    spec: DatasetSpec, data_root: str | None, *, seed: int, download: bool
) -> tuple[Split, Split]:
    if spec.kind == "synthetic":
        return make_synthetic(seed)
    folder = locate(spec, data_root, download_ok=download)
    return READERS[spec.kind](folder)
