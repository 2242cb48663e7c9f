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
from slotsweep.config import UNSET_PARAM, TrialConfig
from slotsweep.registry import metric_names
from slotsweep.result import EpochMetrics, TrialRecord, TrialResult
from slotsweep.store_uri import DEFAULT_TRACKING_URI, absolute_tracking_uri  # noqa: F401

ROLE, STUDY, TRIAL_ID, TRIAL_KEY, VERSION, ERROR, PHASE = (
    "slotsweep.role", "slotsweep.study", "slotsweep.trial_id", "slotsweep.trial_key",
    "slotsweep.version", "slotsweep.error", "slotsweep.phase")
MAX_PARAM_LENGTH = 6000
CHECKPOINT = "slotsweep.checkpoint"  # where the trial's latest checkpoint lies (Tune storage)


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
    """Every resolved setting as an MLflow param; slot-only keys only where they apply."""
    values = config.applicable_params()
    return {key: UNSET_PARAM if value is None else str(value)[:MAX_PARAM_LENGTH]
            for key, value in values.items()}


def epoch_metric_values(metrics: EpochMetrics) -> dict[str, float]:
    """Per-epoch metrics under their MLflow names (finetuning's prefixed with `finetune_`)."""
    prefix = "" if metrics.phase == "train" else f"{metrics.phase}_"
    skip = metric_names("running")  # logged once, as final metrics
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


class MlflowTrialRun:
    """The MLflow run of one trial, found again by its trial key when a study resumes
    (`trial_run.run_trial` is the trial itself, training wrapped in this run)."""

    def __init__(self, client: MlflowClient, run: Run) -> None:
        self.client, self.run = client, run
        self.run_id = run.info.run_id
        self.logged: set[tuple[str, int]] = set()  # (phase, epoch) already in a reopened run

    @property
    def checkpoint(self) -> str | None:
        """Where the trial's latest checkpoint lies, if it saved one."""
        return self.run.data.tags.get(CHECKPOINT)

    @classmethod
    def reopen(cls, uri: str, run_id: str) -> MlflowTrialRun:
        """The run of a trial restored from a checkpoint, RUNNING again; epochs it already
        holds are not logged twice (a trial may die between logging an epoch and its checkpoint,
        and then trains that epoch again, to the same values)."""
        client = MlflowClient(uri)
        run = client.get_run(run_id)
        if run.info.status not in ("RUNNING", "FINISHED"):  # KILLED by the launch that lost it
            client.update_run(run_id, status="RUNNING")
            if ERROR in run.data.tags:
                client.delete_tag(run_id, ERROR)
        trial = cls(client, client.get_run(run_id))
        for phase in ("train", "finetune"):
            key = "train_loss" if phase == "train" else "finetune_train_loss"
            trial.logged |= {(phase, m.step) for m in client.get_metric_history(run_id, key)}
        return trial

    def set_checkpoint(self, location: str) -> None:
        """Records where the latest checkpoint lies (a resumed launch restores from it)."""
        self.client.set_tag(self.run_id, CHECKPOINT, location)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Extra tags (where the trial runs); a restored trial overwrites them."""
        if tags:
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    @property
    def finished(self) -> bool:
        return self.run.info.status == "FINISHED"

    @classmethod
    def open(cls, uri: str, experiment: str, config: TrialConfig, *, trial_key: str,
             trial_id: str, study_name: str | None = None,
             parent_run_id: str | None = None, phase: str = "fixed",
             commit: str | None = None) -> MlflowTrialRun:
        """The finished run of this trial key under the parent, else its newest unfinished run
        that saved a checkpoint (reopened: the trial goes on from there), else a new one (stale
        runs removed)."""
        client = MlflowClient(uri)
        if parent_run_id:
            runs = find_runs(client, experiment, f"tags.`{TRIAL_KEY}` = '{trial_key}' and "
                                                 f"tags.`{MLFLOW_PARENT_RUN_ID}` = "
                                                 f"'{parent_run_id}'")
            for run in runs:
                if run.info.status == "FINISHED":
                    return cls(client, run)
            resumable = next((run for run in runs if CHECKPOINT in run.data.tags), None)
            for run in runs:
                if run is not resumable:
                    client.delete_run(run.info.run_id)
            if resumable is not None:
                return cls.reopen(uri, resumable.info.run_id)
        tags = _tags("trial", commit, {TRIAL_ID: trial_id, TRIAL_KEY: trial_key, PHASE: phase,
                                       MLFLOW_PARENT_RUN_ID: parent_run_id, STUDY: study_name})
        name = f"{config.method}-{config.arch}-k{config.k}-s{config.seed}-{trial_key[:6]}"
        run = client.create_run(experiment, tags=tags, run_name=name)
        trial = cls(client, run)
        params = [Param(k, v) for k, v in trial_params(config).items()]
        client.log_batch(trial.run_id, params=params, tags=[RunTag(MLFLOW_RUN_NAME, name)])
        client.log_dict(trial.run_id, config.resolved().model_dump(), "trial_config.json")
        return trial

    def log_epoch(self, metrics: EpochMetrics) -> None:
        """Per-epoch metrics at step = epoch (once: a reopened run skips epochs it holds)."""
        if (metrics.phase, metrics.epoch) in self.logged:
            return
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


TrialRun = MlflowTrialRun  # the earlier name


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


def log_artifacts(uri: str, run_id: str, folder: Path) -> None:
    """Uploads the files of `folder` to a run's artifacts."""
    MlflowClient(uri).log_artifacts(run_id, str(folder))
