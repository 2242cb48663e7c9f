"""Errors raised while finding or reading a data set.

Both pickle with their own arguments (`__reduce__`): a trial raises them inside a Ray worker,
and Ray rebuilds them in the driver by calling the class with the pickled arguments, which for
a custom `__init__` are not the message that `Exception.args` holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class DataNotFoundError(RuntimeError):
    """A data set's files are in none of the places looked at, and downloading did not help."""

    def __init__(self, dataset: str, looked: Sequence[Path], reason: str, how_to_get: str) -> None:
        self.dataset = dataset
        self.looked = list(looked)
        self.reason, self.how_to_get = reason, how_to_get
        places = "\n".join(f"  {path}" for path in self.looked)
        super().__init__(
            f"data set {dataset!r} not found. Looked in:\n{places}\n"
            f"{reason}\nTo get it: {how_to_get}"
        )

    def __reduce__(self) -> tuple[type, tuple[str, list[Path], str, str]]:
        return type(self), (self.dataset, self.looked, self.reason, self.how_to_get)


class DataFormatError(ValueError):
    """A data file exists but is not in the format its name promises (corrupt or truncated)."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[Path, str]]:
        return type(self), (self.path, self.problem)
