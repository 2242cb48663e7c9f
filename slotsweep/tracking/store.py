"""An MLflow store and experiment: the experiment created with local artifacts beside a SQLite
store, every page of a query, and where a trial logs (`TrackingTarget`)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient

from slotsweep.study.store import absolute_tracking_uri
from slotsweep.tracking.tags import EXPERIMENT_KIND, MODEL_TRAINING


def sqlite_file(uri: str) -> Path | None:
    """The database file of a SQLite store (`sqlite:///PATH`); None for any other store."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def _artifact_root(uri: str) -> str | None:
    """Artifacts beside a local store (MLflow would put them in the current folder)."""
    db = sqlite_file(uri)
    return None if db is None else (db.parent / "mlartifacts").as_uri()


def quiet_mlflow_output() -> None:
    """No MLflow prints in a launch's or a report's output (a user's own setting kept): no
    "View run ... at" line as each run of a server store ends (not into the live view), nor
    download progress bars (carriage returns: control characters in a log file)."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def prepare_store(uri: str) -> None:
    """Creates a SQLite store's tables under a file lock: MLflow creates and migrates them on
    first use without one, and two processes doing it at once fail (`duplicate column`)."""
    db = sqlite_file(uri)
    if db is None:
        return  # a server or database store exists already (its owner created it)
    import fcntl

    folder = db.parent / ".slotsweep"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{db.name}.create.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            MlflowClient(uri).search_experiments(max_results=1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def git_commit() -> str | None:
    """The commit of the current folder's git checkout, where there is one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created (with local artifacts beside the store) if missing,
    marked as model training so MLflow's UI opens it on its runs."""
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        if existing.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:
            client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        return existing.experiment_id
    root = _artifact_root(client.tracking_uri)
    location = f"{root}/{name}" if root else None
    return client.create_experiment(
        name, artifact_location=location, tags={EXPERIMENT_KIND: MODEL_TRAINING}
    )


def now_ms() -> int:
    return int(time.time() * 1000)


PAGE_SIZE = 1000  # runs a query asks for at a time (MLflow's default page is 1,000 as well)


def find_runs(client: MlflowClient, experiment: str, filter_string: str) -> list[Run]:
    """Active runs of one experiment matching a filter, newest first, every page."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment],
            filter_string,
            ViewType.ACTIVE_ONLY,
            max_results=PAGE_SIZE,
            order_by=["attributes.start_time DESC"],
            page_token=token,
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


@dataclass(frozen=True)
class TrackingTarget:
    """Where a trial logs: the store, the experiment and (inside a study) the parent run."""

    uri: str
    experiment_id: str
    parent_run_id: str | None = None
    study_name: str | None = None
    phase: str = "fixed"  # or "search": an Optuna trial, fed back to Optuna when a study resumes
    commit: str | None = None  # git commit of the launching checkout (trials run elsewhere)

    @classmethod
    def for_experiment(cls, uri: str | None, experiment: str) -> TrackingTarget:
        """A trial outside any study (`slotsweep train`): the experiment, created if missing."""
        from mlflow.tracking import MlflowClient

        from slotsweep.tracking.store import experiment_id, git_commit

        uri = absolute_tracking_uri(uri)
        return cls(uri, experiment_id(MlflowClient(uri), experiment), commit=git_commit())
