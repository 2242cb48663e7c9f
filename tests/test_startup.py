"""A launch's start-up: the store and the parent run are made in a thread while Ray starts
(`Launcher._open_and_start_ray`); what the user sees of an error there stays as it was."""

import signal
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import run_cli
from mlflow.tracking import MlflowClient

from slotsweep.launch.launcher import _signals_to_main_thread

ROOT = Path(__file__).resolve().parents[1]


def test_the_store_thread_leaves_sigterm_and_sigint_to_the_main_thread():
    def blocked():
        return signal.pthread_sigmask(signal.SIG_BLOCK, [])

    with ThreadPoolExecutor(1) as pool:
        in_thread = pool.submit(_signals_to_main_thread, blocked).result()
    assert {signal.SIGTERM, signal.SIGINT} <= in_thread
    # the main thread's own mask is untouched: it takes the launch's signals (`LaunchStop`)
    assert not {signal.SIGTERM, signal.SIGINT} & signal.pthread_sigmask(signal.SIG_BLOCK, [])


@pytest.mark.slow
def test_a_store_mlflow_cannot_open_fails_the_launch_as_before_and_stops_its_ray(tmp_path):
    """A valid SQLite file of an MLflow schema this MLflow does not know passes the pre-flight;
    opening it fails in the store thread, after Ray started: the launch still ends with MLflow's
    own message and exit code 1, Ray stopped (its record gone) and no parent run made."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0123456789ab'")
    done = run_cli("launch", str(ROOT / "studies" / "smoke.yaml"), "--num-cpus", "2", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "out-of-date database schema" in " ".join(done.stderr.split())
    assert not (tmp_path / ".slotsweep" / "local-ray-smoke.json").exists()  # Ray was stopped
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)
