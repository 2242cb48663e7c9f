"""Tickets: the trained network as a file of exactly `model_size_bytes`, rebuilt and evaluated."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import torch
from helpers import run_cli
from torch import nn

from slotsweep.config import TrialConfig
from slotsweep.models import create_model
from slotsweep.nn import LayerSpec, SlotConv2d, SlotLinear
from slotsweep.tracking.evaluate import rebuilt_test_accuracy
from slotsweep.train.metrics import model_size_bytes, selection_states
from slotsweep.train.ticket import TicketError, encode_ticket, load_ticket
from slotsweep.train.trainer import train_trial

SPECS = [
    LayerSpec(method="slot", k=8),
    LayerSpec(method="slot", k=8, fused=True),
    LayerSpec(method="slot", k=1),
    LayerSpec(method="slot", k=5, sharing="global"),
    LayerSpec(method="slot", k=16, sharing="layer", selection="probabilistic"),
    LayerSpec(method="edge_popup"),
    LayerSpec(method="dense"),
]


def _trained_looking(model: nn.Module) -> nn.Module:
    """Random scores and weights, so the choices differ from a fresh network's."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.rand(param.shape, generator=generator) - 0.5)
    for module in model.modules():
        if getattr(module, "fused", False):
            module.refresh_cached_weight()
    return model


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.method}-k{s.k}-{s.sharing}")
def test_a_ticket_is_model_size_bytes_and_rebuilds_the_same_network(spec):
    source = _trained_looking(create_model("lenet_300_100", spec))
    ticket = encode_ticket(source)
    assert len(ticket) == model_size_bytes(source)
    rebuilt = create_model("lenet_300_100", spec)
    load_ticket(rebuilt, ticket)
    x = torch.randn(16, 1, 28, 28)
    source.eval(), rebuilt.eval()
    assert torch.equal(source(x), rebuilt(x))
    for a, b in zip(selection_states(source), selection_states(rebuilt), strict=True):
        assert torch.equal(a, b)


def test_slot_ticket_bytes_by_hand():
    # Lenet-300-100 at K=8: 3 bits per connection, an 8-byte seed per layer, nothing else
    model = create_model("lenet_300_100", LayerSpec(method="slot", k=8))
    layers = [(300, 784), (100, 300), (10, 100)]
    expected = sum((out * inp * 3 + 7) // 8 + 8 for out, inp in layers)
    assert len(encode_ticket(model)) == expected == 99849
    dense = create_model("lenet_300_100", LayerSpec(method="dense"))
    assert len(encode_ticket(dense)) == 4 * sum(out * inp for out, inp in layers) == 1064800


def test_batch_norm_statistics_travel_with_the_ticket():
    def net() -> nn.Module:
        return nn.Sequential(
            SlotConv2d(1, 4, 3, k=4, seed=3),
            nn.BatchNorm2d(4, affine=False),
            nn.Flatten(),
            SlotLinear(4 * 6 * 6, 10, k=4, seed=4),
        )

    source = _trained_looking(net())
    source.train()
    source(torch.randn(32, 1, 8, 8))  # moves the running statistics
    ticket = encode_ticket(source)
    assert len(ticket) == model_size_bytes(source)
    rebuilt = net()
    load_ticket(rebuilt, ticket)
    assert torch.equal(rebuilt[1].running_var, source[1].running_var)


def test_a_ticket_for_another_network_is_refused():
    ticket = encode_ticket(create_model("lenet_300_100", LayerSpec(k=8, seed=0)))
    with pytest.raises(TicketError, match="another network"):
        load_ticket(create_model("lenet_300_100", LayerSpec(k=8, seed=1)), ticket)
    with pytest.raises(TicketError, match="too short"):
        load_ticket(create_model("lenet_300_100", LayerSpec(k=16, seed=0)), ticket)
    with pytest.raises(TicketError, match="more than"):
        load_ticket(create_model("lenet_300_100", LayerSpec(k=8)), ticket + b"\0")


def _sha(states: list[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for state in states:
        digest.update(state.numpy().astype("<i8").tobytes())
    return digest.hexdigest()


def test_the_ticket_is_the_best_validation_epoch_not_the_last():
    # a large constant lr keeps the selection moving; validation peaks before the last epoch
    config = TrialConfig(
        dataset="synthetic",
        train_subset=384,
        epochs=4,
        k=8,
        lr=20.0,
        schedule="constant",
        num_threads=1,
    )
    result = train_trial(config)
    assert result.best_epoch < config.epochs  # the case this test is about
    rebuilt = create_model("lenet_300_100", LayerSpec(k=8))
    load_ticket(rebuilt, result.ticket)
    assert _sha(selection_states(rebuilt)) != result.selection_sha256  # not the final network
    accuracy, examples = rebuilt_test_accuracy(config, result.ticket)
    assert examples == 500 and accuracy == result.test_accuracy


@pytest.mark.slow
@pytest.mark.parametrize("method", ["slot", "dense"])
def test_a_downloaded_ticket_gives_the_runs_test_accuracy(tmp_path, method):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    trained = run_cli(
        "train",
        "--dataset",
        "synthetic",
        "--train-subset",
        "384",
        "--epochs",
        "2",
        "--method",
        method,
        *(["--k", "8"] if method == "slot" else []),
        "--num-threads",
        "1",
        "--tracking-uri",
        uri,
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    run_id = re.search(r"MLflow run (\w+)", trained.stdout).group(1)
    client = MlflowClient(uri)
    metrics = client.get_run(run_id).data.metrics
    name = "ticket.bin" if method == "slot" else "weights.bin"
    path = client.download_artifacts(run_id, f"network/{name}", str(tmp_path))
    ticket = open(path, "rb").read()
    assert len(ticket) == metrics["model_size_bytes"]
    config = TrialConfig.model_validate(
        json.loads(
            open(client.download_artifacts(run_id, "trial_config.json", str(tmp_path))).read()
        )
    )
    assert rebuilt_test_accuracy(config, ticket)[0] == metrics["test_accuracy"]
    evaluated = run_cli("evaluate", run_id, "--tracking-uri", uri, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    assert "matches the run" in evaluated.stdout
    assert f"{metrics['test_accuracy']:.6f}" in evaluated.stdout


def test_evaluate_names_a_bad_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    missing = run_cli("evaluate", "0" * 32, "--tracking-uri", uri, cwd=tmp_path)
    assert missing.returncode == 2 and "cannot evaluate run" in missing.stderr
    assert "Traceback" not in missing.stderr
