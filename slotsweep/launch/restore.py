"""A trial's state read back from Tune's storage, checked: a checkpoint whose file cannot be read
or does not match its digest is named and passed over for the one before it (Tune keeps the
latest `CHECKPOINTS_KEPT` of a trial), or for epoch 0 when none is good; a damaged state is never
loaded."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from pyarrow import fs as pafs
from ray import tune

from slotsweep.train.checkpoint import STATE_FILE, DamagedCheckpoint, TrainingState

CHECKPOINTS_KEPT = 2  # a trial's latest checkpoints in Tune's storage: one to fall back on


@dataclass
class Restored:
    """The state to go on from (None: epoch 0) and, when the latest was damaged, what was done
    instead (one line, for the trial's run and the launch's console)."""

    state: TrainingState | None
    damaged: list[str] = field(default_factory=list)

    @property
    def notice(self) -> str | None:
        if not self.damaged:
            return None
        went_on = (
            f"went on from epoch {self.state.epochs_done} (an earlier checkpoint)"
            if self.state is not None
            else "started again from epoch 0 (no good checkpoint left)"
        )
        return f"damaged checkpoint {'; '.join(self.damaged)}: {went_on}"


def _earlier(checkpoint: tune.Checkpoint) -> list[tune.Checkpoint]:
    """The trial's other checkpoints beside `checkpoint`, newest first (Tune names them
    checkpoint_000012 and so on, in one folder per trial)."""
    folder = posixpath.dirname(checkpoint.path.rstrip("/"))
    try:
        infos = checkpoint.filesystem.get_file_info(pafs.FileSelector(folder))
    except OSError:
        return []
    paths = sorted(
        (
            info.path
            for info in infos
            if info.type == pafs.FileType.Directory
            and posixpath.basename(info.path).startswith("checkpoint_")
            and info.path < checkpoint.path.rstrip("/")
        ),
        reverse=True,
    )
    return [tune.Checkpoint(path, filesystem=checkpoint.filesystem) for path in paths]


def _load(checkpoint: tune.Checkpoint) -> TrainingState:
    """The checked state, or `DamagedCheckpoint` with the reason (the path there may be a local
    copy: the caller names the file in storage)."""
    try:
        with checkpoint.as_directory() as folder:
            return TrainingState.load(folder)
    except DamagedCheckpoint:
        raise
    except Exception as error:  # noqa: BLE001 - unreadable or unpicklable: damaged all the same
        raise DamagedCheckpoint(Path(STATE_FILE), f"cannot be loaded ({error})") from error


def restore(checkpoint: tune.Checkpoint) -> Restored:
    """The newest good state among `checkpoint` and the trial's earlier ones."""
    damaged = []
    for candidate in [checkpoint, *_earlier(checkpoint)]:
        try:
            return Restored(_load(candidate), damaged)
        except DamagedCheckpoint as error:
            damaged.append(f"{posixpath.join(candidate.path, error.path.name)} {error.reason}")
    return Restored(None, damaged)
