"""MLflow: one parent run per study launch, one nested child run per trial, stable identities."""

from __future__ import annotations

import subprocess
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Metric, Param, Run, RunStatus, RunTag, ViewType
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from slotsweep import __version__
from slotsweep.config import SLOT_ONLY_KEYS, TrialConfig
from slotsweep.result import EpochMetrics, TrialResult

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ROLE, STUDY, TRIAL_ID, TRIAL_KEY, VERSION, ERROR, PHASE = (
    "slotsweep.role", "slotsweep.study", "slotsweep.trial_id", "slotsweep.trial_key",
    "slotsweep.version", "slotsweep.error", "slotsweep.phase")
MAX_PARAM_LENGTH = 6000


def absolute_tracking_uri(uri: str | None) -> str:
    """The URI with local paths made absolute, so trials in other folders write the same store."""
    uri = uri or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri[len("sqlite:///"):]
        if path and path != ":memory:":
            return "sqlite:///" + str(Path(path).resolve())
    if "://" not in uri:
        return Path(uri).resolve().as_uri()
    if uri.startswith("file:") and not uri.startswith("file:///"):
        return Path(uri[len("file:"):]).resolve().as_uri()
    return uri


def _artifact_root(uri: str) -> str | None:
    """Artifacts beside a local store (MLflow would put them in the current folder)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    return None


def git_commit() -> str | None:
    """The commit of the current folder's git checkout, where there is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created (with local artifacts beside the store) if missing."""
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        return existing.experiment_id
    root = _artifact_root(client.tracking_uri)
    location = f"{root}/{name}" if root else None
    return client.create_experiment(name, artifact_location=location)


def _now_ms() -> int:
    return int(time.time() * 1000)


def trial_params(config: TrialConfig) -> dict[str, str]:
    """Every setting as an MLflow param; slot-only keys only where they apply."""
    values = config.model_dump()
    values["lr"] = config.resolved_lr()
    if config.method != "slot":
        values = {k: v for k, v in values.items() if k not in SLOT_ONLY_KEYS}
    return {key: "auto" if value is None else str(value)[:MAX_PARAM_LENGTH]
            for key, value in values.items()}


def epoch_metric_values(metrics: EpochMetrics) -> dict[str, float]:
    """Per-epoch metrics under their MLflow names (finetuning's prefixed with `finetune_`)."""
    prefix = "" if metrics.phase == "train" else f"{metrics.phase}_"
    skip = ("best_val_accuracy", "training_cost_flops")
    return {prefix + key: value for key, value in metrics.metrics().items() if key not in skip}


def find_runs(client: MlflowClient, experiment: str, filter_string: str) -> list[Run]:
    """Active runs of one experiment matching a filter, newest first, every page."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment], filter_string, ViewType.ACTIVE_ONLY,
                                  max_results=1000, order_by=["attributes.start_time DESC"],
                                  page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _tags(role: str, commit: str | None, extra: dict[str, str | None]) -> dict[str, str]:
    """A run's slotsweep tags: its role, the version, the git commit, and `extra` that is set."""
    tags = {ROLE: role, VERSION: __version__, MLFLOW_GIT_COMMIT: commit, **extra}
    return {key: value for key, value in tags.items() if value is not None}


def _kill(client: MlflowClient, run_id: str) -> None:
    """KILLED: stopped (by a scheduler, an interrupt or a lost worker) before it finished."""
    client.set_tag(run_id, ERROR, "trial stopped before it finished")
    client.set_terminated(run_id, "KILLED")


@dataclass
class StudyRun:
    """The parent run of one launch."""

    client: MlflowClient
    experiment_id: str
    run_id: str
    commit: str | None  # of the launching checkout; trials run elsewhere and inherit it

    @classmethod
    def start(cls, uri: str, experiment: str, study_name: str, description: str,
              resume: bool) -> StudyRun:
        """A new parent run, or with `resume` the study's latest one (reopened)."""
        client, commit = MlflowClient(uri), git_commit()
        exp_id = experiment_id(client, experiment)
        if resume:
            previous = find_runs(client, exp_id, f"tags.`{ROLE}` = 'study' and "
                                                 f"tags.`{STUDY}` = '{study_name}'")
            if previous:
                run_id = previous[0].info.run_id
                client.update_run(run_id, status="RUNNING")
                return cls(client, exp_id, run_id, commit)
        tags = _tags("study", commit, {STUDY: study_name, "mlflow.note.content": description})
        run = client.create_run(exp_id, tags=tags, run_name=study_name)
        return cls(client, exp_id, run.info.run_id, commit)

    def finish(self, status: str) -> None:
        """Ends the parent run (FINISHED, FAILED, KILLED) and any child left open by a stop."""
        for child in self.children():
            if child.info.status == "RUNNING":
                _kill(self.client, child.info.run_id)
        self.client.set_terminated(self.run_id, status)

    def children(self) -> list[Run]:
        """Every trial run of this launch."""
        return find_runs(self.client, self.experiment_id,
                         f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.run_id}'")


def finished_trial_keys(runs: list[Run]) -> set[str]:
    """Trial keys of the FINISHED runs among a parent's children (a resumed launch skips them)."""
    return {run.data.tags.get(TRIAL_KEY, "") for run in runs if run.info.status == "FINISHED"}


def finished_search_trials(runs: list[Run],
                           metrics: list[str]) -> list[tuple[dict[str, str], list[float]]]:
    """(params, objective values) of the FINISHED Optuna trials among a parent's children."""
    return [(dict(run.data.params), [run.data.metrics[m] for m in metrics])
            for run in runs
            if run.info.status == "FINISHED" and run.data.tags.get(PHASE) == "search"
            and all(m in run.data.metrics for m in metrics)]


class TrialRun:
    """The MLflow run of one trial, found again by its trial key when a study resumes."""

    def __init__(self, client: MlflowClient, run: Run) -> None:
        self.client, self.run = client, run
        self.run_id = run.info.run_id

    @property
    def finished(self) -> bool:
        return self.run.info.status == "FINISHED"

    @classmethod
    def open(cls, uri: str, experiment: str, config: TrialConfig, *, trial_key: str,
             trial_id: str, study_name: str | None = None,
             parent_run_id: str | None = None, phase: str = "fixed",
             commit: str | None = None) -> TrialRun:
        """The finished run of this trial key under the parent, else a new one (stale removed)."""
        client = MlflowClient(uri)
        if parent_run_id:
            for run in find_runs(client, experiment, f"tags.`{TRIAL_KEY}` = '{trial_key}' and "
                                                     f"tags.`{MLFLOW_PARENT_RUN_ID}` = "
                                                     f"'{parent_run_id}'"):
                if run.info.status == "FINISHED":
                    return cls(client, run)
                client.delete_run(run.info.run_id)
        tags = _tags("trial", commit, {TRIAL_ID: trial_id, TRIAL_KEY: trial_key, PHASE: phase,
                                       MLFLOW_PARENT_RUN_ID: parent_run_id, STUDY: study_name})
        name = f"{config.method}-{config.arch}-k{config.k}-s{config.seed}-{trial_key[:6]}"
        run = client.create_run(experiment, tags=tags, run_name=name)
        trial = cls(client, run)
        params = [Param(k, v) for k, v in trial_params(config).items()]
        client.log_batch(trial.run_id, params=params, tags=[RunTag(MLFLOW_RUN_NAME, name)])
        resolved = {**config.model_dump(), "lr": config.resolved_lr()}
        client.log_dict(trial.run_id, resolved, "trial_config.json")
        return trial

    def log_epoch(self, metrics: EpochMetrics) -> None:
        """Per-epoch metrics at step = epoch."""
        stamp = _now_ms()
        batch = [Metric(key, value, stamp, metrics.epoch)
                 for key, value in epoch_metric_values(metrics).items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def finish(self, result: TrialResult) -> None:
        """Final metrics, the result JSON, and FINISHED."""
        stamp = _now_ms()
        batch = [Metric(key, value, stamp, 0) for key, value in result.final_metrics().items()]
        tags = [RunTag("slotsweep.impl", result.impl), RunTag("slotsweep.device", result.device)]
        if result.selection_sha256:
            tags.append(RunTag("slotsweep.selection_sha256", result.selection_sha256))
        self.client.log_batch(self.run_id, metrics=batch, tags=tags)
        self.client.log_dict(self.run_id, result.to_dict(), "result.json")
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FINISHED))

    def fail(self, error: BaseException) -> None:
        """Records the error (tag and traceback artifact) and FAILED."""
        message = f"{type(error).__name__}: {error}"
        self.client.set_tag(self.run_id, ERROR, message[:5000])
        text = "".join(traceback.format_exception(error))
        self.client.log_text(self.run_id, text, "error.txt")
        self.client.set_terminated(self.run_id, "FAILED")

    def stop(self) -> None:
        """Records that the trial was stopped (KILLED), not that it failed."""
        _kill(self.client, self.run_id)

    def final_metrics(self) -> dict[str, float]:
        """The metrics a finished run holds (used when a resumed study skips it)."""
        return dict(self.client.get_run(self.run_id).data.metrics)


@dataclass(frozen=True)
class TrialRecord:
    """What a report needs of one trial run, as plain values."""

    run_id: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    error: str | None


def trial_records(uri: str, experiment: str, parent_run_id: str | None = None) -> list[TrialRecord]:
    """Trial runs of an experiment (of one parent run when given), oldest first."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"no MLflow experiment named {experiment!r} in {uri}")
    query = f"tags.`{ROLE}` = 'trial'"
    if parent_run_id:
        query += f" and tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'"
    runs = find_runs(client, exp.experiment_id, query)
    return [TrialRecord(run.info.run_id, run.info.status, dict(run.data.params),
                        dict(run.data.metrics), run.data.tags.get(ERROR))
            for run in reversed(runs)]


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
    import json
    import os
    import tempfile

    # a one-file download needs no progress bar in the middle of a report's output
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = MlflowClient(uri).download_artifacts(run_id, "study.json", folder)
        except Exception:  # noqa: BLE001 - MLflow raises several types for a missing artifact
            return None
        return json.loads(Path(path).read_text())


def log_artifacts(uri: str, run_id: str, folder: Path) -> None:
    """Uploads the files of `folder` to a run's artifacts."""
    MlflowClient(uri).log_artifacts(run_id, str(folder))
