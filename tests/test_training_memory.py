"""`training_memory_bytes` against the state sizes computed by hand (fresh CLI processes)."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli

CONNECTIONS = 784 * 300 + 300 * 100 + 100 * 10  # Lenet-300-100, no biases


def _train(tmp_path, *flags: str) -> dict:
    out = tmp_path / f"{'-'.join(flags)}.json"
    done = run_cli(
        "train",
        "--dataset",
        "synthetic",
        "--train-subset",
        "256",
        "--epochs",
        "1",
        "--num-threads",
        "1",
        "--no-mlflow",
        "--json",
        str(out),
        *flags,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


@pytest.mark.slow
def test_training_memory_shows_the_slot_state_and_not_the_imports(tmp_path):
    k = 64
    # fused update: values, scores, momentum (K floats each per connection) + cached weight
    # and its gradient (one float each)
    slot_state = CONNECTIONS * 4 * (3 * k + 2)
    dense_state = CONNECTIONS * 4 * 3  # weights, gradients, momentum
    slot = _train(tmp_path, "--method", "slot", "--k", str(k), "--impl", "fused")
    dense = _train(tmp_path, "--method", "dense")
    assert slot["memory_state_bytes"] == slot_state == 206_571_200
    assert dense["memory_state_bytes"] == dense_state
    assert slot_state <= slot["training_memory_bytes"] <= 3 * slot_state
    assert dense_state <= dense["training_memory_bytes"] < slot["training_memory_bytes"]
    # the difference the user came to see: at least 80% of the state difference
    gap = slot["training_memory_bytes"] - dense["training_memory_bytes"]
    assert gap >= 0.8 * (slot_state - dense_state)
    # the whole process (imports included) is far larger than what dense training adds
    assert dense["peak_memory_bytes"] > 4 * dense["training_memory_bytes"]
