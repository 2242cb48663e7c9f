"""The random streams are the ones recorded before the seeding schemes became one
(`slotsweep/seeding.py`): the same splits, orders, augmentations and synthetic data, so every
accuracy in the README stays what it was. The numbers below were printed by the code of commit
e53f7bb (before the change) for the same calls."""

import torch

from slotsweep.data.batches import BatchLoader
from slotsweep.data.splits import Split, split_validation
from slotsweep.data.synthetic import make_synthetic
from slotsweep.seeding import data_generator, epoch_generator, epoch_seed


def test_epoch_seeds_are_unchanged():
    assert epoch_seed(0, 1) == 5836529245451711556
    assert epoch_seed(5, 3) == 8065153966420768690
    expected = torch.Generator().manual_seed(5836529245451711556)
    assert torch.equal(
        torch.rand(4, generator=epoch_generator(0, 1)), torch.rand(4, generator=expected)
    )


def test_validation_split_is_unchanged():
    split = Split(torch.zeros(100, 1, 2, 2, dtype=torch.uint8), torch.arange(100))
    train, val = split_validation(split, 0.15, 7)
    assert val.labels.tolist() == [15, 59, 71, 57, 2, 27, 87, 54, 36, 96, 98, 76, 28, 43, 8]
    assert train.labels[:10].tolist() == [80, 58, 91, 61, 25, 56, 5, 99, 9, 60]
    assert torch.equal(
        torch.randperm(9, generator=data_generator(7)),
        torch.randperm(9, generator=torch.Generator().manual_seed(7)),
    )


def test_shuffled_order_is_unchanged():
    split = Split(torch.zeros(100, 1, 2, 2, dtype=torch.uint8), torch.arange(100))
    loader = BatchLoader(split, 10, mean=[0.0], std=[1.0], shuffle=True, seed=4)
    loader.set_epoch(2)
    order = torch.cat([labels for _, labels in loader]).tolist()
    assert order[:20] == [
        98,
        96,
        89,
        36,
        20,
        78,
        56,
        40,
        1,
        81,
        83,
        13,
        95,
        52,
        33,
        41,
        61,
        14,
        80,
        9,
    ]


def test_augmentation_is_unchanged():
    images = (torch.arange(20 * 3 * 8 * 8) % 251).to(torch.uint8).view(20, 3, 8, 8)
    loader = BatchLoader(
        Split(images, torch.arange(20)),
        8,
        mean=[0.5] * 3,
        std=[0.25] * 3,
        shuffle=True,
        augment=True,
        seed=2,
    )
    loader.set_epoch(1)
    sums = [float(x[0].double().sum()) for x, _ in loader]
    expected = [-227.30979393981397, -248.94116864912212, -160.29802465438843]
    assert all(abs(a - b) < 1e-6 for a, b in zip(sums, expected, strict=True))


def test_synthetic_data_is_unchanged():
    train, test = make_synthetic(3, n_train=200, n_test=50)
    assert train.labels[:12].tolist() == [0, 5, 1, 9, 6, 5, 4, 0, 2, 6, 2, 2]
    assert int(train.images.sum()) == 19098642 and int(test.images.sum()) == 4899469
    assert test.labels[:8].tolist() == [5, 9, 8, 3, 6, 6, 7, 9]


def test_no_module_seeds_a_generator_itself():
    """Every generator of the package comes from seeding.py (the one scheme)."""
    from pathlib import Path

    import slotsweep

    package = Path(slotsweep.__file__).parent
    seeding = [
        p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if ".manual_seed(" in p.read_text() or "SeedSequence" in p.read_text()
    ]
    assert seeding == ["seeding.py"]
