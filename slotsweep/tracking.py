"""MLflow: one parent run per study launch, one nested child run per trial, stable identities."""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    Metric,
    Param,
    Run,
    RunStatus,
    RunTag,
    ViewType,
)
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from slotsweep import __version__
from slotsweep.config import NOT_APPLICABLE, SLOT_ONLY_KEYS, UNSET_PARAM, TrialConfig
from slotsweep.registry import metric_names
from slotsweep.result import EpochMetrics, TrialRecord, TrialResult
from slotsweep.store_uri import DEFAULT_TRACKING_URI, absolute_tracking_uri  # noqa: F401

ROLE, STUDY, TRIAL_ID, TRIAL_KEY, VERSION, ERROR, PHASE = (
    "slotsweep.role", "slotsweep.study", "slotsweep.trial_id", "slotsweep.trial_key",
    "slotsweep.version", "slotsweep.error", "slotsweep.phase")
MAX_PARAM_LENGTH = 6000
CHECKPOINT = "slotsweep.checkpoint"  # where the trial's latest checkpoint lies (Tune storage)
# MLflow 3 shows an experiment without this tag as a GenAI one (traces, not runs)
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NO_K, NO_LOG2_K = 0, -1.0  # what a dense or edge-popup run shows for K
SYSTEM_METRICS_INTERVAL_S = 5.0  # MLflow's own MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL overrides
NETWORK_DIR, NETWORK_TAG = "network", "slotsweep.network"
SPLIT_CONTEXT = {"train": "training", "val": "validation", "test": "test"}



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
    return client.create_experiment(name, artifact_location=location,
                                    tags={EXPERIMENT_KIND: MODEL_TRAINING})


def _now_ms() -> int:
    return int(time.time() * 1000)


def trial_params(config: TrialConfig) -> dict[str, str]:
    """Every resolved setting as an MLflow param, the same keys for every method, plus `log2_k`.

    MLflow's parallel-coordinates and scatter plots drop a run that lacks a chosen key and turn a
    numeric axis into categories when one value is not a number. So a dense or edge-popup run
    shows `k` = 0 and `log2_k` = -1 (no candidate values; on a log2 axis just left of K=1), and
    `n/a` for the other slot-only settings.
    """
    values = config.resolved().model_dump()
    values["log2_k"] = math.log2(config.k)
    if config.method != "slot":
        values.update({key: NOT_APPLICABLE for key in SLOT_ONLY_KEYS}, k=NO_K, log2_k=NO_LOG2_K)
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
        self.monitor = None  # MLflow's system-metrics sampler while the trial trains

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
        trial.monitor = _system_metrics(uri, run_id)
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
        k = f"-k{config.k}" if config.method == "slot" else ""
        name = f"{config.method}-{config.arch}{k}-s{config.seed}-{trial_key[:6]}"
        run = client.create_run(experiment, tags=tags, run_name=name)
        trial = cls(client, run)
        trial.monitor = _system_metrics(uri, trial.run_id)
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
        """Final metrics, the data, the trained network, the result JSON, and FINISHED."""
        self._stop_monitor()
        stamp = _now_ms()
        batch = [Metric(key, value, stamp, 0) for key, value in result.final_metrics().items()]
        tags = [RunTag("slotsweep.impl", result.impl), RunTag("slotsweep.device", result.device)]
        if result.selection_sha256:
            tags.append(RunTag("slotsweep.selection_sha256", result.selection_sha256))
        self.client.log_batch(self.run_id, metrics=batch, tags=tags)
        self.client.log_dict(self.run_id, result.to_dict(), "result.json")
        if result.datasets:
            self.client.log_inputs(self.run_id, datasets=[_dataset_input(d)
                                                          for d in result.datasets])
        if result.ticket is not None:
            self._log_network(result)
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FINISHED))

    def _log_network(self, result: TrialResult) -> None:
        """The best-validation epoch's network: a ticket (slot, edge-popup) or the weights."""
        name = network_file(str(result.params.get("method", "slot")))
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_bytes(result.ticket)
            self.client.log_artifact(self.run_id, str(path), NETWORK_DIR)
        self.client.set_tag(self.run_id, NETWORK_TAG, f"{NETWORK_DIR}/{name}")

    def _stop_monitor(self) -> None:
        if self.monitor is not None:
            self.monitor.finish()
            self.monitor = None

    def fail(self, error: BaseException) -> None:
        """Records the error (tag and traceback artifact) and FAILED."""
        self._stop_monitor()
        message = f"{type(error).__name__}: {error}"
        self.client.set_tag(self.run_id, ERROR, message[:5000])
        text = "".join(traceback.format_exception(error))
        self.client.log_text(self.run_id, text, "error.txt")
        self.client.set_terminated(self.run_id, "FAILED")

    def stop(self) -> None:
        """Records that the trial was stopped (KILLED), not that it failed."""
        self._stop_monitor()
        _kill(self.client, self.run_id)

    def final_metrics(self) -> dict[str, float]:
        """The metrics a finished run holds (used when a resumed study skips it)."""
        return dict(self.client.get_run(self.run_id).data.metrics)


def network_file(method: str) -> str:
    """The artifact name of a trained network: a ticket, or a dense network's weights."""
    return "weights.bin" if method == "dense" else "ticket.bin"


def _system_metrics(uri: str, run_id: str):  # noqa: ANN202 (MLflow's class, imported lazily)
    """MLflow's sampler of CPU, memory, disk, network (and GPU with pynvml) for a run it did not
    start itself (trials are created through MlflowClient, not `mlflow.start_run`)."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=SYSTEM_METRICS_INTERVAL_S,
                                   tracking_uri=uri)
    monitor.start()
    return monitor


def _dataset_input(summary: dict[str, object]) -> DatasetInput:
    """One split as an MLflow dataset input: name, digest, size and shape in its profile."""
    profile = {key: summary[key] for key in ("examples", "shape", "num_classes")}
    profile["sha256"] = summary["digest"]
    source = json.dumps({"dataset": str(summary["name"]).rsplit("-", 1)[0],
                         "split": summary["split"]})
    dataset = Dataset(name=str(summary["name"]), digest=str(summary["digest"])[:16],
                      source_type="slotsweep", source=source, profile=json.dumps(profile))
    context = SPLIT_CONTEXT.get(str(summary["split"]), str(summary["split"]))
    return DatasetInput(dataset, [InputTag("mlflow.data.context", context)])



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


TABLE_FILE = "comparison_table.json"


def log_study_summary(uri: str, run_id: str, *, tags: dict[str, str],
                      metrics: dict[str, float], table: dict[str, list],
                      files: list[Path], note: str | None = None) -> None:
    """The parent run as the study's summary: tags and metrics of the best configuration and the
    counts, the comparison as an MLflow table (the UI's artifact view shows it as a grid), the
    report's files (figures show as images), and the plan as the run's description."""
    client = MlflowClient(uri)
    stamp = _now_ms()
    batch_tags = [RunTag(key, value[:5000]) for key, value in tags.items()]
    if note is not None:
        batch_tags.append(RunTag("mlflow.note.content", note))
    client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in metrics.items()],
                     tags=batch_tags)
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


@dataclass(frozen=True)
class NetworkDownload:
    """A trial run's recipe, trained-network file and final metrics, downloaded."""

    config: dict[str, object]
    path: Path
    metrics: dict[str, float]


def download_network(uri: str, run_id: str, folder: Path) -> NetworkDownload:
    """Downloads a trial run's `trial_config.json` and its network file into `folder`."""
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    network = run.data.tags.get(NETWORK_TAG)
    if network is None:
        raise LookupError(f"run {run_id} holds no trained network (tag {NETWORK_TAG}): it is "
                          f"not a finished slotsweep trial, or older than this feature")
    config = Path(client.download_artifacts(run_id, "trial_config.json", str(folder)))
    path = Path(client.download_artifacts(run_id, network, str(folder)))
    return NetworkDownload(json.loads(config.read_text()), path, dict(run.data.metrics))
