"""Shared helpers: run the CLI as a user would, in a temporary folder."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import writers

# The writers lived in the package as slotsweep.data.writers; tests written against that name
# still import it.
sys.modules.setdefault("slotsweep.data.writers", writers)

FASHION = Path("/usr/share/datasets/fashion-mnist")


CLI_ENV = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


def run_cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """`slotsweep ARGS` in `cwd`, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "slotsweep", *args],
        cwd=cwd,
        env=CLI_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen_cli(*args: str, cwd: Path, **popen: object) -> subprocess.Popen:
    """`slotsweep ARGS` started in the background (output discarded unless `stdout` is given)."""
    output = popen.pop("stdout", subprocess.DEVNULL)
    return subprocess.Popen(
        [sys.executable, "-m", "slotsweep", *args],
        cwd=cwd,
        env=CLI_ENV,
        stdout=output,
        stderr=subprocess.DEVNULL,
        **popen,
    )


@pytest.fixture
def fashion_mnist() -> Path:
    """The real Fashion-MNIST of Debian's dataset-fashion-mnist (skips where it is absent)."""
    if not (FASHION / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    return FASHION


@contextlib.contextmanager
def ui_server(study: Path, cwd: Path) -> Iterator[str]:
    """`slotsweep ui STUDY` on a free port; yields its base URL and stops it (and its workers).

    What it prints (the links) is in `cwd / "ui.out"`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    output = (cwd / "ui.out").open("w")
    process = popen_cli(
        "ui", str(study), "--port", str(port), cwd=cwd, start_new_session=True, stdout=output
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a loaded 2-core machine starts MLflow slowly
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise TimeoutError("slotsweep ui did not answer within 240 s")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # MLflow's server can be slow to stop under load
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        output.close()
