"""The data sets slotsweep knows: where their files live and how they are split and augmented.

A data set is one `DatasetSpec` registered in `registry.DATASETS` (the `dataset` trial key's
values); a new one in a format slotsweep reads (`kind`) needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from slotsweep.registry import DATASETS

Kind = Literal["idx", "cifar", "synthetic"]


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about one named data set."""

    name: str
    kind: Kind
    val_fraction: float  # the paper's validation share of the training set
    augment: bool  # random flip + crop while training (CIFAR-10 in the paper)
    num_classes: int = 10
    debian_name: str | None = None  # folder under /usr/share/datasets
    torchvision_class: str | None = None  # torchvision.datasets class that downloads it
    apt_package: str | None = None  # Debian package that installs it, where one exists


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Adds a data set under its name."""
    return DATASETS.register(spec.name, spec)


for _spec in (
    DatasetSpec("mnist", "idx", 0.15, False, debian_name="mnist", torchvision_class="MNIST"),
    DatasetSpec(
        "fashion_mnist",
        "idx",
        0.15,
        False,
        debian_name="fashion-mnist",
        torchvision_class="FashionMNIST",
        apt_package="dataset-fashion-mnist",
    ),
    DatasetSpec(
        "cifar10", "cifar", 0.10, True, debian_name="cifar-10", torchvision_class="CIFAR10"
    ),
    DatasetSpec("synthetic", "synthetic", 0.15, False),
):
    register_dataset(_spec)


def get_spec(name: str) -> DatasetSpec:
    """The spec of data set `name`; ValueError naming the known sets otherwise."""
    return DATASETS.get(name)
