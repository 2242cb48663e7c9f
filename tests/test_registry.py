"""One vocabulary: every name is declared once, and what derives from it follows a new entry."""

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from helpers import run_cli
from torch import nn
from writers import write_idx_folder

from slotsweep import registry
from slotsweep.cli.flags import flag_name
from slotsweep.config import TrialConfig, runtime_keys
from slotsweep.data import load_data
from slotsweep.data.catalog import DatasetSpec, register_dataset
from slotsweep.data.synthetic import make_synthetic
from slotsweep.models import create_model, register_model
from slotsweep.nn import LayerSpec, register_family
from slotsweep.nn.dense import DenseFamily, DenseLinear
from slotsweep.report import reference
from slotsweep.study.validate import parse_study
from slotsweep.train.optim import build_optimizer, build_schedule, register_schedule
from slotsweep.train.result import EpochMetrics, tune_epoch_keys
from slotsweep.train.trainer import train_trial

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
QUICK = {"dataset": "synthetic", "epochs": 1, "train_subset": 200, "batch_size": 50}


def test_contract_names_in_their_order():
    assert registry.FAMILIES.names() == ("slot", "dense", "edge_popup")
    assert registry.ARCHS.names() == ("lenet_300_100", "conv2", "conv4", "conv6", "vgg19")
    assert registry.DATASETS.names() == ("mnist", "fashion_mnist", "cifar10", "synthetic")
    assert registry.SELECTIONS.names() == ("greedy", "probabilistic")
    assert registry.SHARINGS.names() == ("none", "layer", "global")


def test_unknown_names_are_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="Input should be 'slot', 'dense' or 'edge_popup'"):
        TrialConfig(method="pruned")
    with pytest.raises(ValueError, match="unknown arch 'resnet'; choose one of 'lenet_300_100'"):
        create_model("resnet", LayerSpec())

    def lenet_300_100(layers, **kw):
        return nn.Identity()

    with pytest.raises(ValueError, match="arch 'lenet_300_100' is registered already"):
        register_model(lenet_300_100)
    with pytest.raises(ValueError, match="registered already"):
        registry.SELECTIONS.register("greedy", "again")


def test_derived_names_follow_the_registry():
    """The report's columns, Tune's keys, the trackers' per-epoch names and the identity keys
    are the registry's; the trainer measures exactly the registered metrics."""
    from slotsweep.report import not_configuration, reported_metrics

    compared = tuple(n for n, m in registry.METRICS.items() if m.compared)
    assert registry.metric_names(compared=True) == compared
    # the report adds the metrics only some trials log (finetuning's)
    assert reported_metrics() == (*compared, *registry.metric_names("final", optional=True))
    assert set(tune_epoch_keys()) == {
        n for n, m in registry.METRICS.items() if m.phase in ("epoch", "running")
    }
    epoch_fields = {f.name for f in fields(EpochMetrics)} - {"epoch", "phase"}
    assert epoch_fields == set(tune_epoch_keys())
    every_epoch = registry.metric_names("epoch", optional=False)
    assert set(every_epoch) >= {"train_loss", "train_accuracy", "val_accuracy", "epoch_time_s"}
    assert runtime_keys() == {"data_root", "device", "num_threads"}
    assert not_configuration() == {"seed", "data_root", "device", "num_threads", "log2_k"}
    result = train_trial(TrialConfig(**QUICK, finetune_epochs=1))
    assert set(result.final_metrics()) == set(registry.metric_names("final", "running"))
    assert set(result.epochs[0].metrics()) == set(tune_epoch_keys())


def test_default_tracking_uri_is_declared_once():
    package = Path(registry.__file__).parent
    holders = [p.name for p in package.rglob("*.py") if "sqlite:///mlflow.db" in p.read_text()]
    assert holders == ["registry.py"]


def test_no_reference_to_material_users_do_not_have():
    root = Path(__file__).parents[1]
    files = [
        *root.glob("slotsweep/**/*.py"),
        *root.glob("tests/*.py"),
        *root.glob("docs/*.md"),
        *root.glob("bench/*"),
        root / "README.md",
        root / "setup.py",
    ]
    marker = "/".join(("..", "shared"))  # spelled apart, so that this file passes its own test
    assert [p.name for p in files if marker in p.read_text()] == []


# --- the docs' tables are the registry's ---


def test_every_trial_key_has_a_train_flag_and_a_docs_row():
    done = run_cli("train", "--help", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    text = (DOCS / "study-file.md").read_text()
    for name in TrialConfig.model_fields:
        assert re.search(rf"{re.escape(flag_name(name))}\b", done.stdout), name
        assert f"| `{name}` |" in text, name
    assert reference.trial_key_table() in text


def test_docs_show_the_registry_tables():
    assert reference.vocabulary_table() in (DOCS / "development.md").read_text()
    assert reference.metric_table() in (DOCS / "mlflow.md").read_text()


@pytest.mark.slow  # the CLI trains
def test_train_takes_the_keys_that_had_no_flag(tmp_path):
    done = run_cli(
        "train",
        *sum((["--" + k.replace("_", "-"), str(v)] for k, v in QUICK.items()), []),
        "--restart-period",
        "3",
        "--val-fraction",
        "0.25",
        "--no-fail-on-nan",
        "--no-mlflow",
        "--json",
        "out.json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    params = json.loads((tmp_path / "out.json").read_text())["params"]
    assert params["restart_period"] == 3 and params["val_fraction"] == 0.25
    assert params["fail_on_nan"] is False
    bad = run_cli("train", "--val-fraction", "2", "--no-mlflow", cwd=tmp_path)
    assert bad.returncode == 2 and "--val-fraction" in bad.stderr


# --- a toy entry of each vocabulary, registered, used end to end, unregistered ---


@pytest.fixture
def toy_arch():
    def toy_mlp(layers, *, in_channels, image_size, num_classes, padding, dropout):
        return nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            layers.linear(in_channels * image_size * image_size, num_classes),
        )

    register_model(toy_mlp, default_dropout=0.25)
    yield "toy_mlp"
    registry.ARCHS.unregister("toy_mlp")


def test_a_toy_arch_is_one_registration(toy_arch):
    config = TrialConfig(**QUICK, arch=toy_arch)
    assert config.resolved().dropout == 0.25
    result = train_trial(config)
    assert 0 <= result.test_accuracy <= 1 and result.model_size_bytes == 8 + 784 * 10 * 3 // 8
    parse_study({"name": "toy", "trial": {**QUICK, "arch": toy_arch}})


def test_a_toy_arch_is_gone_after_unregistering():
    assert "toy_mlp" not in registry.ARCHS
    with pytest.raises(ValueError):
        TrialConfig(arch="toy_mlp")


class HalvedDense(DenseFamily):
    """A toy family: weight-trained layers initialised at half the usual scale."""

    name = "halved_dense"
    default_lr = 0.05

    def linear(self, in_features, out_features, *, seed):
        layer = DenseLinear(in_features, out_features, seed=seed)
        with torch.no_grad():
            layer.weight.mul_(0.5)
        return layer


@pytest.fixture
def toy_family():
    register_family(HalvedDense)
    yield HalvedDense.name
    registry.FAMILIES.unregister(HalvedDense.name)


def test_a_toy_layer_family_is_one_registration(toy_family):
    config = TrialConfig(**QUICK, method=toy_family)
    assert config.resolved().lr == 0.05
    dense = create_model("lenet_300_100", LayerSpec(method="dense"))
    halved = create_model("lenet_300_100", LayerSpec(method=toy_family))
    assert torch.equal(halved[1].weight, dense[1].weight * 0.5)
    result = train_trial(config)
    assert result.params["method"] == toy_family and result.selection_sha256 is None


@pytest.fixture
def toy_dataset(tmp_path):
    spec = register_dataset(
        DatasetSpec("toy_digits", "idx", 0.2, False, torchvision_class="ToyDigits")
    )
    train, test = make_synthetic(5, n_train=120, n_test=30)
    write_idx_folder(tmp_path / "ToyDigits" / "raw", train, test, gz=True)
    yield spec.name, tmp_path
    registry.DATASETS.unregister(spec.name)


def test_a_toy_dataset_is_one_registration(toy_dataset):
    name, root = toy_dataset
    data = load_data(name, str(root), download=False)
    assert (len(data.train), len(data.val), len(data.test)) == (96, 24, 30)
    config = TrialConfig(**{**QUICK, "train_subset": None, "dataset": name}, data_root=str(root))
    assert config.resolved().val_fraction == 0.2
    assert train_trial(config).params["dataset"] == name


@pytest.fixture
def toy_schedule():
    @register_schedule("halving")
    def halving(optimizer, epochs, period):
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)

    yield "halving"
    registry.SCHEDULES.unregister("halving")


def test_a_toy_schedule_is_one_registration(toy_schedule):
    config = TrialConfig(**{**QUICK, "epochs": 2}, schedule=toy_schedule, lr=0.1)
    assert [epoch.lr for epoch in train_trial(config).epochs] == [0.1, 0.05]
    model = create_model("lenet_300_100", LayerSpec(method="dense"))
    assert build_schedule(build_optimizer(model, 1.0, 0.0, 0.0), "halving", 3, 1) is not None


@pytest.fixture
def toy_metric():
    import slotsweep.report as report

    # registries are read when asked: a late registration is seen without reloading anything
    registry.METRICS.register("toy_score", registry.Metric("", "max", "final", "a toy", True))
    yield report
    registry.METRICS.unregister("toy_score")


def test_a_toy_metric_is_one_entry(toy_metric, tmp_path):
    """A registered compared metric becomes a column of the comparison CSV."""
    from slotsweep.train.result import TrialRecord

    record = TrialRecord("r", "FINISHED", {"method": "slot"}, {"toy_score": 2.0}, None)
    rows = toy_metric.compare([record])
    toy_metric.write_csv(rows, tmp_path / "c.csv")
    header, line = (tmp_path / "c.csv").read_text().splitlines()
    values = dict(zip(header.split(","), line.split(","), strict=True))
    assert values["toy_score_mean"] == "2.0"
    assert (
        "toy_score" in toy_metric.reported_metrics()
        and "| `toy_score` |" in reference.metric_table()
    )
