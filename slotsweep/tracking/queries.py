"""Reading a study back from MLflow: its trial runs as records, its latest launch, the study that
ran, the parent run's summary written."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from slotsweep.tracking import tags as tags_
from slotsweep.tracking.store import find_runs, now_ms, quiet_mlflow_output
from slotsweep.tracking.tags import ERROR, ROLE
from slotsweep.train.result import TrialRecord

_read_once: dict[tuple, list[TrialRecord]] | None = None  # inside `records_read_once` only


@contextmanager
def records_read_once() -> Iterator[None]:
    """Inside, `trial_records` reads each query from the store once and answers it again from
    what it read (a copy): a report reads a launch's 1,000 trial runs (seconds over a server)
    for its tables and again for the parent run's summary, and both describe the same reading."""
    global _read_once
    outer, _read_once = _read_once, {} if _read_once is None else _read_once
    try:
        yield
    finally:
        _read_once = outer


def trial_records(uri: str, experiment: str, parent_run_id: str | None = None) -> list[TrialRecord]:
    """Trial runs of an experiment (of one parent run when given), oldest first."""
    key = (uri, experiment, parent_run_id)
    if _read_once is not None and key in _read_once:
        return list(_read_once[key])
    records = _read_records(uri, experiment, parent_run_id)
    if _read_once is not None:
        _read_once[key] = list(records)
    return records


def _read_records(uri: str, experiment: str, parent_run_id: str | None) -> list[TrialRecord]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"no MLflow experiment named {experiment!r} in {uri}")
    query = f"tags.`{ROLE}` = 'trial'"
    if parent_run_id:
        query += f" and tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'"
    runs = find_runs(client, exp.experiment_id, query)
    return [
        TrialRecord(
            run.info.run_id,
            run.info.status,
            dict(run.data.params),
            dict(run.data.metrics),
            run.data.tags.get(ERROR),
        )
        for run in reversed(runs)
    ]


def latest_study_run(uri: str, experiment: str) -> str | None:
    """The run id of the newest study (parent) run of an experiment."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = find_runs(client, exp.experiment_id, f"tags.`{ROLE}` = 'study'")
    return runs[0].info.run_id if runs else None


def study_document(uri: str, run_id: str) -> dict | None:
    """The study a launch logged to its parent run (`study.json`: the settings that ran, after
    presets and `--set`); None where the run has none."""
    quiet_mlflow_output()  # no progress bar for a one-file download in a report's output
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = MlflowClient(uri).download_artifacts(run_id, "study.json", folder)
        except Exception:  # noqa: BLE001 - MLflow raises several types for a missing artifact
            return None
        return json.loads(Path(path).read_text())


def log_artifacts(uri: str, run_id: str, folder: Path) -> None:
    """Uploads the files of `folder` to a run's artifacts."""
    MlflowClient(uri).log_artifacts(run_id, str(folder))


TABLE_FILE = "comparison_table.json"


def log_study_summary(
    uri: str,
    run_id: str,
    *,
    tags: dict[str, str],
    metrics: dict[str, float],
    table: dict[str, list],
    files: list[Path],
    note: str | None = None,
) -> None:
    """The parent run as the study's summary: tags and metrics of the best configuration and the
    counts, the comparison as an MLflow table (the UI's artifact view shows it as a grid), the
    report's files (figures show as images), and the plan as the run's description."""
    client = MlflowClient(uri)
    stamp = now_ms()
    batch_tags = [RunTag(key, value[:5000]) for key, value in tags.items()]
    if note is not None:
        batch_tags.append(RunTag(tags_.NOTE, note))
    client.log_batch(
        run_id, metrics=[Metric(k, v, stamp, 0) for k, v in metrics.items()], tags=batch_tags
    )
    if TABLE_FILE in {a.path for a in client.list_artifacts(run_id)}:
        # log_table appends to an existing table; a refreshed summary replaces it
        rows = [list(row) for row in zip(*table.values(), strict=True)]
        client.log_dict(run_id, {"columns": list(table), "data": rows}, TABLE_FILE)
    else:
        client.log_table(run_id, table, TABLE_FILE)
    for path in files:
        client.log_artifact(run_id, str(path))


@dataclass(frozen=True)
class StudyCoordinates:
    """Where a study's latest launch is in a store: experiment, parent run, its trial runs."""

    experiment_id: str
    parent_run_id: str | None
    trials: list[TrialRecord]


def study_coordinates(uri: str, experiment: str) -> StudyCoordinates:
    """The experiment id, the latest parent run and its trials (LookupError if no experiment)."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"no MLflow experiment named {experiment!r} in {uri}")
    parent = latest_study_run(uri, experiment)
    trials = trial_records(uri, experiment, parent) if parent else []
    return StudyCoordinates(exp.experiment_id, parent, trials)


def set_experiment_tag(uri: str, experiment_id: str, key: str, value: str) -> None:
    """Sets one tag on an experiment (the UI's shared view states live in such tags)."""
    MlflowClient(uri).set_experiment_tag(experiment_id, key, value)
