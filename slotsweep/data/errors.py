"""Errors raised while finding or reading a data set."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class DataNotFoundError(RuntimeError):
    """A data set's files are in none of the places looked at, and downloading did not help."""

    def __init__(self, dataset: str, looked: Sequence[Path], reason: str, how_to_get: str) -> None:
        self.dataset = dataset
        self.looked = list(looked)
        places = "\n".join(f"  {path}" for path in self.looked)
        super().__init__(
            f"data set {dataset!r} not found. Looked in:\n{places}\n"
            f"{reason}\nTo get it: {how_to_get}"
        )


class DataFormatError(ValueError):
    """A data file exists but is not in the format its name promises (corrupt or truncated)."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")
