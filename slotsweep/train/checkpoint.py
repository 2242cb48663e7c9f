"""A trial's whole training state at an epoch boundary, saved so that training goes on exactly.

A restored trial must end bit for bit where an uninterrupted one ends, so the state holds
everything a later epoch reads: the phase's model (parameters and buffers), the optimiser with
its momentum buffers, the learning-rate schedule, every random generator that training draws
from (torch's global one for dropout, each PS layer's sampling generator), best-so-far, the
cumulative FLOPs and the per-epoch history. The loader needs nothing: its order and augmentation
depend only on (seed, epoch). It knows no Ray or MLflow; `run_id` is carried for the caller.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slotsweep.train.result import EpochMetrics

STATE_FILE = "training_state.pt"
DIGEST_FILE = "training_state.sha256"  # sha256 of STATE_FILE's bytes, checked before loading


class DamagedCheckpoint(Exception):
    """A checkpoint that cannot be trusted: unreadable, cut short, or not matching its digest."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason

    def __reduce__(self) -> tuple[type, tuple[Path, str]]:
        return type(self), (self.path, self.reason)


@dataclass
class TrainingState:
    """Training stopped after `epoch` of `phase` ('train' or 'finetune')."""

    phase: str
    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    schedule: dict[str, Any] | None
    best: tuple[float, float, int]  # (val accuracy, test accuracy then, epoch) in this phase
    flops: float  # cumulative over the trial
    history: list[EpochMetrics]  # every epoch so far, both phases
    rng: dict[str, Any]
    elapsed_s: float  # training time before this state was taken (train_time_s goes on from it)
    # finetuning only: the slot phase's summary and its network (the result's selection)
    earlier: dict[str, Any] | None = None
    slot_model: dict[str, torch.Tensor] | None = None
    run_id: str | None = None  # the trial's MLflow run, reopened by a restored trial
    ticket: bytes | None = None  # the slot phase's network at its best-val epoch, so far
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs_done(self) -> int:
        """Epochs finished over both phases."""
        return len(self.history)

    def save(self, folder: str | Path) -> Path:
        """Writes the state into `folder` (created); returns the file."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        values = dataclasses.asdict(self)
        values["history"] = [dataclasses.asdict(epoch) for epoch in self.history]
        path = folder / STATE_FILE
        # through memory, then one write: a file cut short by a kill is never read (save() of
        # Tune's checkpoint copies whole folders, and a partial local file is replaced next time)
        buffer = io.BytesIO()
        torch.save(values, buffer)
        data = buffer.getbuffer()
        _write(folder / DIGEST_FILE, hashlib.sha256(data).hexdigest().encode())
        _write(path, data)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> TrainingState:
        """The state `save` wrote into `folder`, once its digest matches; else
        `DamagedCheckpoint` naming the file (a damaged state is never loaded)."""
        values = torch.load(
            io.BytesIO(verified_bytes(Path(folder))), map_location="cpu", weights_only=False
        )
        values["history"] = [EpochMetrics(**epoch) for epoch in values["history"]]
        values["best"] = tuple(values["best"])
        return cls(**values)


def _write(path: Path, data: bytes | memoryview) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def verified_bytes(folder: Path) -> bytes:
    """The state file's bytes, read whole and checked against the digest saved beside it."""
    path = folder / STATE_FILE
    try:
        data = path.read_bytes()
        expected = (folder / DIGEST_FILE).read_text().strip()
    except OSError as error:
        raise DamagedCheckpoint(path, f"cannot be read ({error.strerror or error})") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise DamagedCheckpoint(
            path,
            f"does not match its digest ({len(data)} bytes, sha256 {actual[:12]}, "
            f"saved as {expected[:12]})",
        )
    return data


def _samplers(model: nn.Module) -> dict[str, nn.Module]:
    """Layers that keep a sampling generator (PS slot layers), by module name."""
    return {
        name: module
        for name, module in model.named_modules()
        if hasattr(module, "_sample_generator")
    }


def rng_state(model: nn.Module) -> dict[str, Any]:
    """Every generator training draws from: torch's (CPU and CUDA) and each PS layer's."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "samplers": {}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    for name, layer in _samplers(model).items():
        if layer._sampler is not None:
            state["samplers"][name] = layer._sampler.get_state()
    return state


def restore_rng(model: nn.Module, state: dict[str, Any]) -> None:
    """Puts back what `rng_state` took (the model already on its device)."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, layer in _samplers(model).items():
        if name in state["samplers"]:
            sampler = layer._sample_generator()  # made on the scores' device, then overwritten
            sampler.set_state(state["samplers"][name])


# Whether the launch is being stopped (a signal): then the next epoch's end saves a checkpoint
# whatever `every` says. Set in a trial's process by the launch layer (it asks Ray), read here
# because the trainer asks `is_due` at every epoch's end.
_stop_probe: Callable[[], bool] | None = None


def set_stop_probe(probe: Callable[[], bool] | None) -> None:
    global _stop_probe
    _stop_probe = probe


def is_due(epoch: int, every: int, last: int) -> bool:
    """Whether a checkpoint is taken after `epoch` of a phase of `last` epochs.

    `every` <= 0 turns checkpoints off, unless the launch is being stopped; the final epoch of
    the trial needs none (it finishes).
    """
    if epoch == last:
        return False
    return (every > 0 and epoch % every == 0) or (_stop_probe is not None and _stop_probe())
