"""The contract every registered data set passes, read from small files in its real format.

The files are written in the layout a user would have (torchvision's folders under a data
root), by `writers`, which encode the on-disk formats independently of the readers.
"""

from pathlib import Path

import pytest
import torch
from writers import write_cifar_folder, write_idx_folder

from slotsweep import registry
from slotsweep.data import DataNotFoundError, Split, load_data
from slotsweep.data.cifar import FOLDER as CIFAR_FOLDER

N_TRAIN, N_TEST = 60, 20
SHAPES = {"idx": (1, 28, 28), "cifar": (3, 32, 32), "synthetic": (1, 28, 28)}


def _random_split(count: int, shape: tuple[int, ...], seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, *shape), generator=generator, dtype=torch.uint8)
    return Split(images, torch.randint(0, 10, (count,), generator=generator))


def _write(spec, root: Path) -> tuple[Split, Split] | None:
    """The files of `spec` under `root` in its format; the splits written (None: no files)."""
    if spec.kind == "synthetic":
        return None
    train = _random_split(N_TRAIN, SHAPES[spec.kind], 1)
    test = _random_split(N_TEST, SHAPES[spec.kind], 2)
    if spec.kind == "idx":
        write_idx_folder(root / str(spec.torchvision_class) / "raw", train, test, gz=True)
    else:
        write_cifar_folder(root / CIFAR_FOLDER, train, test)
    return train, test


every_dataset = pytest.mark.parametrize("name", registry.DATASETS.names())


@every_dataset
def test_reads_its_files_into_typed_splits(name, tmp_path):
    spec = registry.DATASETS.get(name)
    written = _write(spec, tmp_path)
    data = load_data(name, str(tmp_path), seed=3, download=False)
    for split in (data.train, data.val, data.test):
        assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
        assert tuple(split.images.shape[1:]) == SHAPES[spec.kind]
        assert int(split.labels.min()) >= 0 and int(split.labels.max()) < data.num_classes
    assert data.augment == spec.augment and len(data.mean) == SHAPES[spec.kind][0]
    if written is None:
        return
    train, test = written
    assert torch.equal(data.test.images, test.images) and torch.equal(data.test.labels, test.labels)
    assert len(data.val) == round(N_TRAIN * spec.val_fraction)
    # train and validation partition the training file: every image exactly once
    parts = torch.cat([data.train.images, data.val.images]).flatten(1)
    order = lambda t: sorted(map(bytes, t.numpy()))  # noqa: E731
    assert order(parts) == order(train.images.flatten(1))


@every_dataset
def test_the_split_is_the_seeds(name, tmp_path):
    _write(registry.DATASETS.get(name), tmp_path)
    a, b = (load_data(name, str(tmp_path), seed=3, download=False) for _ in range(2))
    other = load_data(name, str(tmp_path), seed=4, download=False)
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.train.labels, b.train.labels)
    assert not torch.equal(a.val.images, other.val.images)
    subset = load_data(
        name, str(tmp_path), seed=3, train_subset=40, val_fraction=0.25, download=False
    )
    assert (len(subset.train), len(subset.val)) == (30, 10)


@every_dataset
def test_missing_files_name_where_they_were_looked_for(name, tmp_path, monkeypatch):
    spec = registry.DATASETS.get(name)
    if spec.kind == "synthetic":
        pytest.skip("made from the seed: no files")
    monkeypatch.delenv("SLOTSWEEP_DATA", raising=False)
    monkeypatch.setattr("slotsweep.data.locate.SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setattr("slotsweep.data.locate.CACHE_DIR", tmp_path / "cache")
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "empty")):
        load_data(name, str(tmp_path / "empty"), download=False)
