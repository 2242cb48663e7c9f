"""What a trial needs from the Ray worker it runs on: checkpoints through Tune's storage, where
it runs (for its MLflow tags), its GPU share, and the credentials the launcher passes on."""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from collections.abc import Callable
from typing import Any

import ray
from ray import tune

from slotsweep.launch.restore import restore
from slotsweep.launch.stop import trial_stop_request
from slotsweep.launch.trial import Checkpointing
from slotsweep.tracking import tags
from slotsweep.train.checkpoint import TrainingState
from slotsweep.train.result import EpochMetrics

# MLflow's own variables for an authenticating tracking server; passed to trials, never logged
CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
)


def credentials_env() -> dict[str, str]:
    """The launcher's MLflow credentials, for every trial's runtime env."""
    return {name: os.environ[name] for name in CREDENTIAL_VARIABLES if name in os.environ}


def checkpoint_location(checkpoint: tune.Checkpoint) -> str:
    """A checkpoint's place in storage as one string (`tune.Checkpoint(location)` reads it)."""
    kind = checkpoint.filesystem.type_name
    return checkpoint.path if kind == "local" else f"{kind}://{checkpoint.path}"


def _named(error: OSError, where: str) -> OSError:
    """A full disk, named: where the checkpoint was being written."""
    if error.errno != errno.ENOSPC and "No space left" not in str(error):
        return error
    return OSError(errno.ENOSPC, f"No space left on device: saving a checkpoint into {where}")


def tune_checkpointing(
    every: int,
    epoch_values: Callable[[EpochMetrics], dict[str, float]],
    stop_token: str | None = None,
) -> Checkpointing:
    """Checkpoints as Tune's: saved with an epoch's `tune.report`, restored by Tune after a
    lost worker (`tune.get_checkpoint`), or by location from the trial's MLflow run; each
    restore checked, falling back to an earlier checkpoint (`restore`). `stop_token`: the
    launch whose stop (a signal) makes the trial save at its next epoch's end and wait."""

    def save(metrics: EpochMetrics, state: TrainingState) -> str:
        with tempfile.TemporaryDirectory(prefix="slotsweep-checkpoint-") as folder:
            try:
                state.save(folder)
            except OSError as error:
                raise _named(error, folder) from error
            try:
                checkpoint = tune.Checkpoint.from_directory(folder)
                tune.report(epoch_values(metrics), checkpoint=checkpoint)
            except OSError as error:  # Tune's copy into its storage
                raise _named(error, tune.get_context().get_trial_dir()) from error
        return checkpoint_location(tune.get_checkpoint())  # the copy Tune persisted

    checkpointing = Checkpointing(every, save, lambda location: None)

    def load(location: str | tune.Checkpoint) -> TrainingState | None:
        found = restore(tune.Checkpoint(location) if isinstance(location, str) else location)
        checkpointing.damaged = found.notice
        return found.state

    checkpointing.load = load
    restored = tune.get_checkpoint()
    checkpointing.latest = load(restored) if restored is not None else None
    if stop_token:
        checkpointing.after_save = trial_stop_request(stop_token)
    return checkpointing


def node_tags(gpu: float) -> dict[str, str]:
    """Where this trial runs: host, node address and id, and its GPUs (ids, names) if any."""
    found = {
        tags.HOST: socket.gethostname(),
        tags.NODE_IP: ray.util.get_node_ip_address(),
        tags.NODE_ID: ray.get_runtime_context().get_node_id(),
        tags.PID: str(os.getpid()),
    }
    if gpu:
        found[tags.GPU_IDS] = ",".join(str(i) for i in ray.get_gpu_ids())
        import torch

        if torch.cuda.is_available():
            found[tags.GPU_NAMES] = ",".join(
                torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
            )
    return found


def prepare_gpu(settings: dict[str, Any], gpu: float) -> dict[str, Any]:
    """A trial given a GPU share trains on CUDA (not silently on the CPU), within that share of
    the GPU's memory; returns the settings it changes.

    Without a CUDA device the trial then fails at once with one line (the trainer refuses
    'cuda'), rather than training for hours on the CPU of a GPU node.
    """
    if not gpu:
        return {}
    from slotsweep.train.device import cap_gpu_memory

    # Ray shows the trial only its GPU (CUDA_VISIBLE_DEVICES): it is device 0 here; set again by
    # every trial, as a reused process may have run a trial of another share before
    cap_gpu_memory(gpu, 0)
    return {"device": "cuda"} if settings.get("device", "auto") == "auto" else {}


def cluster_summary() -> str:
    """The alive nodes of the connected cluster with their resources, one line each."""
    lines = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        shown = ", ".join(
            f"{name} {resources[name]:g}" for name in ("CPU", "GPU") if name in resources
        )
        memory = resources.get("memory", 0) / 2**30
        lines.append(
            f"  {node.get('NodeManagerHostname', '?')} {node['NodeManagerAddress']}: "
            f"{shown}, memory {memory:.1f} GiB"
        )
    total = ray.cluster_resources()
    return (
        f"Ray cluster: {len(lines)} nodes, {total.get('CPU', 0):g} CPUs, "
        f"{total.get('GPU', 0):g} GPUs\n" + "\n".join(lines)
    )
