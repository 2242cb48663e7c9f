"""Tests of slotsweep.data: readers on files written in the real formats, lookup, splits, loader."""

from __future__ import annotations

import os
import pickle
import socket
import time
from pathlib import Path

import pytest
import torch
from writers import write_cifar_folder, write_idx_folder

from slotsweep.data import BatchLoader, DataFormatError, DataNotFoundError, Split, load_data
from slotsweep.data import download as download_module
from slotsweep.data import locate as locate_module
from slotsweep.data.augment import flip_crop, random_flip_crop

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test sees the machine's data, $SLOTSWEEP_DATA or the user's download cache."""
    monkeypatch.delenv("SLOTSWEEP_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(locate_module, "SYSTEM_DIR", tmp_path / "system")


# --- small data sets in the real on-disk formats ----------------------------------------------


def numbered(count: int, shape: tuple[int, ...], seed: int) -> Split:
    """Random images whose first pixel is their index (so any split traces back); labels i % 10."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, *shape), dtype=torch.uint8, generator=generator)
    images.view(count, -1)[:, 0] = torch.arange(count)
    return Split(images, torch.arange(count) % 10)


def mnist_like(n_train: int = 40, n_test: int = 7) -> tuple[Split, Split]:
    return numbered(n_train, (1, 28, 28), seed=0), numbered(n_test, (1, 28, 28), seed=1)


def cifar_like(n_train: int = 20, n_test: int = 5) -> tuple[Split, Split]:
    return numbered(n_train, (3, 32, 32), seed=2), numbered(n_test, (3, 32, 32), seed=3)


def ids(split: Split) -> list[int]:
    return split.images.reshape(len(split), -1)[:, 0].tolist()


def assert_matches_written(data, train: Split, test: Split) -> None:
    """Test split equal to what was written; train + val a permutation of the written train."""
    assert torch.equal(data.test.images, test.images) and torch.equal(data.test.labels, test.labels)
    images = torch.cat([data.train.images, data.val.images])
    labels = torch.cat([data.train.labels, data.val.labels])
    order = torch.argsort(images.reshape(len(images), -1)[:, 0])
    assert torch.equal(images[order], train.images) and torch.equal(labels[order], train.labels)


# --- readers and layouts -----------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["MNIST/raw", ".", "mnist"])
def test_idx_layouts_load_exact_pixels(tmp_path, gz, layout):
    train, test = mnist_like()
    write_idx_folder(tmp_path / "root" / layout, train, test, gz=gz)
    data = load_data("mnist", str(tmp_path / "root"), download=False)
    assert data.train.images.shape[1:] == (1, 28, 28)
    assert data.train.images.dtype == torch.uint8 and data.train.labels.dtype == torch.int64
    assert_matches_written(data, train, test)
    assert data.num_classes == 10 and data.augment is False


def test_fashion_mnist_uses_torchvision_folder_name(tmp_path):
    train, test = mnist_like()
    write_idx_folder(tmp_path / "FashionMNIST" / "raw", train, test, gz=True)
    assert_matches_written(load_data("fashion_mnist", str(tmp_path), download=False), train, test)
    with pytest.raises(DataNotFoundError):  # the MNIST folder is not Fashion-MNIST's
        load_data("mnist", str(tmp_path), download=False)


@pytest.mark.parametrize("subfolder", ["cifar-10-batches-py", "."])
def test_cifar_batches_load_exact_pixels(tmp_path, subfolder):
    train, test = cifar_like()
    write_cifar_folder(tmp_path / subfolder, train, test)
    data = load_data("cifar10", str(tmp_path), download=False)
    assert data.train.images.shape[1:] == (3, 32, 32) and len(data.mean) == 3
    assert len(data.val) == 2  # 10% of 20
    assert_matches_written(data, train, test)
    assert data.augment is True


@pytest.mark.parametrize(
    ("name", "damage", "problem"),
    [
        ("train-labels-idx1-ubyte", lambda data: b"\x00\x00\x08\x03" + data[4:], "magic"),
        ("t10k-images-idx3-ubyte", lambda data: data[:-10], "bytes of data"),
        ("t10k-images-idx3-ubyte.gz", lambda data: b"not gzip at all", "cannot read"),
    ],
)
def test_corrupt_idx_names_the_file(tmp_path, name, damage, problem):
    write_idx_folder(tmp_path, *mnist_like(), gz=name.endswith(".gz"))
    bad = tmp_path / name
    bad.write_bytes(damage(bad.read_bytes()))
    with pytest.raises(DataFormatError, match=problem) as info:
        load_data("mnist", str(tmp_path), download=False)
    assert str(info.value).startswith(f"{bad}:")


def test_corrupt_cifar_batch_names_the_file(tmp_path):
    write_cifar_folder(tmp_path, *cifar_like())
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"wrong": 1}))
    with pytest.raises(DataFormatError, match="data_batch_3"):
        load_data("cifar10", str(tmp_path), download=False)


# --- where files are looked for ----------------------------------------------------------------


def write_labelled(folder: Path, label: int) -> None:
    train, test = mnist_like()
    write_idx_folder(folder, Split(train.images, torch.full_like(train.labels, label)), test)


def test_root_precedence(tmp_path, monkeypatch):
    write_labelled(tmp_path / "arg", 1)
    write_labelled(tmp_path / "env", 2)
    write_labelled(tmp_path / "system" / "mnist", 3)
    write_labelled(tmp_path / "home" / ".cache" / "slotsweep" / "data" / "MNIST" / "raw", 4)

    def label(data_root=None):
        return int(load_data("mnist", data_root, download=False).train.labels[0])

    assert label() == 3  # Debian's folder comes before the download cache
    monkeypatch.setenv("SLOTSWEEP_DATA", str(tmp_path / "env"))
    assert label() == 2
    assert label(str(tmp_path / "arg")) == 1
    monkeypatch.delenv("SLOTSWEEP_DATA")
    (tmp_path / "system" / "mnist" / "train-images-idx3-ubyte").unlink()
    assert label() == 4  # an incomplete folder is passed over


def test_missing_data_lists_every_path(tmp_path, monkeypatch):
    monkeypatch.setenv("SLOTSWEEP_DATA", str(tmp_path / "env"))
    with pytest.raises(DataNotFoundError) as info:
        load_data("mnist", str(tmp_path / "arg"), download=False)
    message = str(info.value)
    for folder in ["arg/MNIST/raw", "arg", "arg/mnist", "env/MNIST/raw", "env", "system/mnist"]:
        assert f"  {tmp_path / folder}\n" in message
    assert info.value.looked[0] == tmp_path / "arg" / "MNIST" / "raw"
    assert "download=False" in message and "$SLOTSWEEP_DATA" in message


def test_missing_fashion_mnist_suggests_apt(tmp_path):
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_data("fashion_mnist", str(tmp_path), download=False)


def no_network(*args, **kwargs):
    raise OSError("network disabled by the test")


def test_download_without_network_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(socket, "create_connection", no_network)
    start = time.monotonic()
    with pytest.raises(DataNotFoundError) as info:
        load_data("cifar10", str(tmp_path), download=True)
    assert time.monotonic() - start < 30
    assert f"  {tmp_path / 'cifar-10-batches-py'}\n" in str(info.value)
    assert "no network" in str(info.value) and "--data-root" in str(info.value)


def test_hanging_network_probe_is_bounded(tmp_path, monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(5)
        raise OSError("too late")

    monkeypatch.setattr(socket, "create_connection", hang)
    monkeypatch.setattr(download_module, "PROBE_TIMEOUT", 0.2)
    start = time.monotonic()
    with pytest.raises(DataNotFoundError, match="no network"):
        load_data("mnist", str(tmp_path), download=True)
    assert time.monotonic() - start < 3


def test_torchvision_download_failure_becomes_not_found(tmp_path, monkeypatch):
    monkeypatch.setattr(download_module, "reachable", lambda url: True)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(DataNotFoundError, match="Download into") as info:
        load_data("fashion_mnist", str(tmp_path), download=True)
    assert str(tmp_path) in str(info.value)


# --- splits ------------------------------------------------------------------------------------


@pytest.fixture
def mnist_root(tmp_path) -> str:
    write_idx_folder(tmp_path / "data", *mnist_like(n_train=200))
    return str(tmp_path / "data")


def test_split_sizes_follow_the_paper(mnist_root):
    data = load_data("mnist", mnist_root, download=False)
    assert (len(data.train), len(data.val), len(data.test)) == (170, 30, 7)
    data = load_data("mnist", mnist_root, download=False, val_fraction=0.5)
    assert (len(data.train), len(data.val)) == (100, 100)
    synthetic = load_data("synthetic")
    assert (len(synthetic.train), len(synthetic.val), len(synthetic.test)) == (1700, 300, 500)


def test_split_is_fixed_by_seed_and_disjoint(mnist_root):
    first = load_data("mnist", mnist_root, seed=1, download=False)
    again = load_data("mnist", mnist_root, seed=1, download=False)
    other = load_data("mnist", mnist_root, seed=2, download=False)
    assert ids(first.val) == ids(again.val) and ids(first.train) == ids(again.train)
    assert set(ids(first.val)) != set(ids(other.val))
    assert not set(ids(first.train)) & set(ids(first.val))
    assert set(ids(first.train)) | set(ids(first.val)) == set(range(200))


def test_train_subset_takes_the_first_examples(mnist_root):
    data = load_data("mnist", mnist_root, train_subset=40, download=False)
    assert set(ids(data.train)) | set(ids(data.val)) == set(range(40))
    assert (len(data.train), len(data.val), len(data.test)) == (34, 6, 7)
    with pytest.raises(ValueError, match="train_subset"):
        load_data("mnist", mnist_root, train_subset=201, download=False)


def test_mean_and_std_come_from_the_train_split(tmp_path):
    train, test = mnist_like(n_train=100)
    test.images[:] = 255  # would pull the mean up if test were counted
    write_idx_folder(tmp_path, train, test)
    data = load_data("mnist", str(tmp_path), download=False)
    pixels = data.train.images.double() / 255
    assert data.mean[0] == pytest.approx(pixels.mean().item(), abs=1e-9)
    assert data.std[0] == pytest.approx(pixels.std(unbiased=False).item(), abs=1e-9)
    with_val = torch.cat([data.train.images, data.val.images]).double() / 255
    assert data.mean[0] != pytest.approx(with_val.mean().item(), abs=1e-9)


def test_unknown_name_is_an_error():
    with pytest.raises(ValueError, match="choose one of .mnist."):
        load_data("imagenet")


def test_synthetic_is_deterministic_and_learnable():
    data = load_data("synthetic", seed=3)
    assert torch.equal(data.train.images, load_data("synthetic", seed=3).train.images)
    assert data.train.images.shape[1:] == (1, 28, 28)
    assert set(data.train.labels.tolist()) == set(range(10))
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(784, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10)
    )
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = BatchLoader(data.train, 64, mean=data.mean, std=data.std, shuffle=True)
    for x, y in loader:  # one epoch
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    x, y = next(iter(BatchLoader(data.test, 500, mean=data.mean, std=data.std, shuffle=False)))
    assert (model(x).argmax(1) == y).float().mean() > 0.6  # chance is 0.1


# --- BatchLoader -------------------------------------------------------------------------------


def id_split(count: int = 10, channels: int = 1, size: int = 4) -> Split:
    images = torch.arange(count, dtype=torch.uint8).view(-1, 1, 1, 1)
    return Split(images.expand(count, channels, size, size).contiguous(), torch.arange(count))


def epoch_labels(loader: BatchLoader, epoch: int) -> list[int]:
    loader.set_epoch(epoch)
    return torch.cat([y for _, y in loader]).tolist()


def test_loader_covers_each_example_once_with_partial_last_batch():
    loader = BatchLoader(id_split(10), 4, mean=(0.0,), std=(1.0,), shuffle=True)
    batches = list(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == list(range(10))
    for x, y in batches:  # images travel with their labels
        assert torch.allclose(x[:, 0, 0, 0], y.float() / 255)


@pytest.mark.parametrize("shuffle", [True, False])
def test_loader_over_an_empty_split_yields_nothing(shuffle):
    empty = Split(torch.zeros(0, 1, 4, 4, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))
    loader = BatchLoader(empty, 4, mean=(0.0,), std=(1.0,), shuffle=shuffle)
    assert len(loader) == 0 and list(loader) == []


def test_loader_order_depends_only_on_seed_and_epoch():
    def make(seed: int) -> BatchLoader:
        return BatchLoader(id_split(50), 8, mean=(0.0,), std=(1.0,), shuffle=True, seed=seed)

    assert epoch_labels(make(0), 3) == epoch_labels(make(0), 3)
    assert epoch_labels(make(0), 3) != epoch_labels(make(0), 4)
    assert epoch_labels(make(0), 3) != epoch_labels(make(1), 3)
    unshuffled = BatchLoader(id_split(50), 8, mean=(0.0,), std=(1.0,), shuffle=False)
    assert epoch_labels(unshuffled, 5) == list(range(50))


def test_loader_normalises_per_channel():
    images = torch.tensor([51, 102, 204], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    split = Split(images.contiguous(), torch.zeros(2, dtype=torch.int64))
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.1)
    x, y = next(iter(BatchLoader(split, 2, mean=mean, std=std, shuffle=False)))
    expected = [(v / 255 - m) / s for v, m, s in zip([51, 102, 204], mean, std, strict=True)]
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.allclose(x[:, :, 0, 0], torch.tensor(expected).expand(2, 3), atol=1e-5)


def _huge_page_kb(address: int) -> int:
    """AnonHugePages of the mapping of this process that holds `address`."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            start, end = (int(part, 16) for part in fields[0].split("-"))
            inside = start <= address < end
        elif inside and fields[0] == "AnonHugePages:":
            return int(fields[1])
    return 0


THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


@pytest.mark.skipif(
    not THP.exists() or "[madvise]" not in THP.read_text(),
    reason="huge pages are not given on request (madvise) here",
)
def test_loader_keeps_the_split_in_huge_pages():
    split = Split(torch.zeros(6000, 1, 28, 28, dtype=torch.uint8), torch.zeros(6000).long())
    loader = BatchLoader(split, 128, mean=(0.5,), std=(0.5,), shuffle=True)
    assert _huge_page_kb(loader._images.data_ptr()) >= 2048
    ordinary = torch.zeros(6000, 1, 28, 28)
    assert _huge_page_kb(ordinary.data_ptr()) == 0
    x, _ = next(iter(loader))
    assert torch.equal(x, torch.full_like(x, -1.0))


def test_loader_checks_its_arguments():
    with pytest.raises(ValueError, match="mean and std"):
        BatchLoader(id_split(), 2, mean=(0.0, 0.0), std=(1.0, 1.0), shuffle=False)
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(id_split(), 0, mean=(0.0,), std=(1.0,), shuffle=False)


# --- augmentation ------------------------------------------------------------------------------


def gradient_images(count: int) -> torch.Tensor:
    """Images whose pixel value is column + 1 (never 0), so flips and zero padding show."""
    row = torch.arange(1, 33, dtype=torch.uint8)
    return row.expand(count, 3, 32, 32).contiguous()


def test_flip_mirrors_columns_and_centre_crop_is_identity():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    centre = torch.full((4, 2), 4)
    flips = torch.tensor([True, False, True, False])
    out = flip_crop(images, flips, centre)
    assert torch.equal(out[flips], images[flips].flip(-1))
    assert torch.equal(out[~flips], images[~flips])


def test_crop_shifts_content_and_pads_with_zeros():
    images = torch.randint(1, 256, (2, 3, 32, 32), dtype=torch.uint8)
    out = flip_crop(images, torch.tensor([False, False]), torch.tensor([[0, 0], [8, 2]]))
    assert out.shape == (2, 3, 32, 32)
    assert torch.equal(out[0, :, 4:, 4:], images[0, :, :-4, :-4])
    assert (out[0, :, :4] == 0).all() and (out[0, :, :, :4] == 0).all()
    assert torch.equal(out[1, :, :-4, 2:], images[1, :, 4:, :-2])
    assert (out[1, :, -4:] == 0).all() and (out[1, :, :, :2] == 0).all()


def test_random_flip_crop_varies_per_sample():
    out = random_flip_crop(gradient_images(200), torch.Generator().manual_seed(0))
    assert out.shape == (200, 3, 32, 32)
    middle = out[:, 0, 16].long()  # a row the vertical shift never blanks
    steps = middle[:, 5:27].diff(dim=1)  # columns the horizontal shift never blanks
    flipped = (steps == -1).all(dim=1)
    assert ((steps == 1).all(dim=1) | flipped).all()  # each row is shifted, maybe mirrored
    assert 0.3 < flipped.float().mean() < 0.7
    zero_rows = (out[:, 0] == 0).all(dim=2).sum(dim=1)
    assert zero_rows.max() <= 4 and len(set(zero_rows.tolist())) == 5  # vertical shifts 0..4
    assert len(set(middle[~flipped, 16].tolist())) == 9  # nine horizontal offsets, all drawn


def test_augmented_loader_is_deterministic_per_epoch():
    split = Split(gradient_images(64), torch.arange(64))
    loader = BatchLoader(split, 16, mean=(0.5,) * 3, std=(0.25,) * 3, shuffle=True, augment=True)

    def epoch_images(epoch):
        loader.set_epoch(epoch)
        return torch.cat([x for x, _ in loader])

    assert torch.equal(epoch_images(1), epoch_images(1))
    assert not torch.equal(epoch_images(1), epoch_images(2))
    assert epoch_images(0).shape == (64, 3, 32, 32)


# --- the real data set shipped by Debian -------------------------------------------------------


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian_folder(monkeypatch):
    monkeypatch.setattr(locate_module, "SYSTEM_DIR", FASHION_DIR.parent)
    data = load_data("fashion_mnist", download=False)
    assert len(data.train) + len(data.val) == 60000 and len(data.val) == 9000
    assert len(data.test) == 10000
    assert data.train.images.shape[1:] == data.test.images.shape[1:] == (1, 28, 28)
    counts = torch.bincount(torch.cat([data.train.labels, data.val.labels]), minlength=10)
    assert counts.tolist() == [6000] * 10
    assert 0.2 < data.mean[0] < 0.4 and 0.25 < data.std[0] < 0.45


def test_a_process_reads_a_data_set_once_and_a_changed_one_again(tmp_path):
    """Trials sharing a process share the data as read (same tensors, the same splits drawn
    from them); a folder whose files changed is read again."""
    write_labelled(tmp_path / "a", 1)
    first = load_data("mnist", str(tmp_path / "a"), download=False, seed=0)
    again = load_data("mnist", str(tmp_path / "a"), download=False, seed=0)
    assert again.test.images is first.test.images  # read once
    assert torch.equal(again.train.images, first.train.images)
    write_labelled(tmp_path / "a", 5)
    for path in (tmp_path / "a").iterdir():  # a later time, whatever the clock's resolution
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = load_data("mnist", str(tmp_path / "a"), download=False, seed=0)
    assert int(changed.train.labels[0]) == 5
