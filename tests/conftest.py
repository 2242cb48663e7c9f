"""The suite's fixtures and hooks. Helpers that tests import are in `helpers.py` (the CLI, the
UI server, waits), the writers of the data formats in `writers.py`.

Markers (registered in pyproject.toml, `--strict-markers`): `slow` on every test that starts
Ray, spawns a CLI that trains, starts a server (MLflow, PostgreSQL, a Ray node), drives
Chromium, or trains more than a few dozen steps or on real data; `paper_full` on the paper
studies beyond the three the suite runs end to end, deselected unless `-m` names it (below)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import FASHION

PAPER_FULL = "paper_full"


@pytest.fixture
def fashion_mnist() -> Path:
    """The real Fashion-MNIST of Debian's dataset-fashion-mnist (skips where it is absent)."""
    if not (FASHION / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    return FASHION


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`paper_full` tests run only when the `-m` expression names the marker (`-m paper_full`,
    `-m "slow or paper_full"`); any other selection, none included, leaves them out."""
    if PAPER_FULL in (config.getoption("markexpr") or ""):
        return
    kept, left_out = [], []
    for item in items:
        (left_out if item.get_closest_marker(PAPER_FULL) else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
