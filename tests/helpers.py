"""Helpers the tests import: run the CLI as a user would, in a temporary folder; serve the UI;
wait for a state without depending on the machine's speed. (Fixtures and hooks are in
`conftest.py`; the writers of the data formats in `writers.py`.)"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import psutil
import pytest

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLI_ENV = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
# a busy machine starts a Ray node's agents slowly; Ray's defaults give them 30 s
RAY_SLOW_START = {"RAY_agent_register_timeout_ms": "180000", "RAY_raylet_start_wait_time_s": "180"}

T = TypeVar("T")


def run_cli(
    *args: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`slotsweep ARGS` in `cwd`, output captured (`env`: instead of `CLI_ENV`)."""
    return subprocess.run(
        [sys.executable, "-m", "slotsweep", *args],
        cwd=cwd,
        env=CLI_ENV if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, **popen: object
) -> subprocess.Popen:
    """`slotsweep ARGS` started in the background (output discarded unless `stdout` is given)."""
    output = popen.pop("stdout", subprocess.DEVNULL)
    return subprocess.Popen(
        [sys.executable, "-m", "slotsweep", *args],
        cwd=cwd,
        env=CLI_ENV if env is None else env,
        stdout=output,
        stderr=popen.pop("stderr", subprocess.DEVNULL),
        **popen,
    )


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float,
    what: str,
    process: subprocess.Popen | None = None,
    every: float = 0.5,
    log: Path | None = None,
) -> T:
    """The first true value `predicate()` returns, polled every `every` s.

    Fails the test as soon as `process` (the one that should bring the state about) has exited
    without the state being reached, or after `timeout` s: a wait ends when what it waits for
    can no longer come, not at its limit. `log`: a file whose tail the failure shows."""
    deadline = time.monotonic() + timeout
    while True:
        exited = process.poll() if process is not None else None
        value = predicate()
        if value:
            return value
        if exited is not None:  # polled before the last look: a state reached as it exited counts
            pytest.fail(f"{what}: never seen; its process exited with {exited}{_tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not seen within {timeout:.0f} s{_tail(log)}")
        time.sleep(every)


def _tail(log: Path | None) -> str:
    return f"\n--- {log} ---\n{log.read_text()[-3000:]}" if log and log.exists() else ""


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    """Whether an HTTP server answers `url` (any status but a refused or hung connection)."""
    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except OSError:
        return False


def start_mlflow_server(
    backend: str, folder: Path, port: int, log: Path, *args: str, env: dict[str, str]
) -> subprocess.Popen:
    """`mlflow server` (one worker, artifacts in `folder / "artifacts"`) on `backend`, in its own
    session, once it answers /health; `args` go before the store (`--app-name basic-auth`)."""
    with log.open("a") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", *args, "--backend-store-uri", backend]
            + ["--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1"]
            + ["--port", str(port), "--workers", "1"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: answers(f"http://127.0.0.1:{port}/health"),
            timeout=180,
            what="mlflow server answering /health",
            process=server,
            log=log,
        )
    except BaseException:  # pytest's failure included: leave no server behind
        kill_session(server.pid)
        raise
    return server


@contextlib.contextmanager
def ui_server(study: Path, cwd: Path) -> Iterator[str]:
    """`slotsweep ui STUDY` on a free port; yields its base URL and stops it (and its workers).

    What it prints (the links) is in `cwd / "ui.out"`, its errors in `cwd / "ui.err"`."""
    port = free_port()
    output, errors = (cwd / "ui.out").open("w"), (cwd / "ui.err").open("w")
    process = popen_cli(
        "ui",
        str(study),
        "--port",
        str(port),
        cwd=cwd,
        start_new_session=True,
        stdout=output,
        stderr=errors,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # a loaded 2-core machine starts MLflow slowly; a server that died ends the wait at once
        wait_until(
            lambda: answers(f"{url}/health"),
            timeout=240,
            what="slotsweep ui answering /health",
            process=process,
            log=cwd / "ui.err",
        )
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # MLflow's server can be slow to stop under load
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        output.close()
        errors.close()


def trial_runs(client: MlflowClient, experiment: str) -> list[Run]:
    """The trial runs of `experiment` (none while it does not exist yet)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    role = "tags.`slotsweep.role` = 'trial'"
    return client.search_runs([found.experiment_id], role, max_results=1000)


def logged_epochs(client: MlflowClient, run_id: str) -> list[int]:
    """The epochs a trial run logged (its `train_loss` steps), in order, repeats kept."""
    return sorted(m.step for m in client.get_metric_history(run_id, "train_loss"))


def session_processes(sid: int) -> list[psutil.Process]:
    """Every process of session `sid` (what a `start_new_session` child and its children are)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getsid(process.pid) == sid:
                found.append(process)
    return found


def kill_session(sid: int) -> None:
    """SIGKILL to every process of session `sid`, as a lost machine would do."""
    processes = session_processes(sid)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(processes, timeout=30)
