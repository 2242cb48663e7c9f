"""The MLflow runs of a launch: one parent run per study launch, one nested child run per trial,
found again by its trial key when a study resumes."""

from __future__ import annotations

import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import DatasetInput, Metric, Param, Run, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from slotsweep import __version__
from slotsweep.config import ResolvedConfig
from slotsweep.tracking.params import dataset_input, epoch_metric_values, network_file, trial_params
from slotsweep.tracking.store import experiment_id, find_runs, git_commit, now_ms
from slotsweep.tracking.tags import (
    CHECKPOINT,
    DEVICE,
    ERROR,
    IMPL,
    NETWORK_DIR,
    NETWORK_TAG,
    NOTE,
    PHASE,
    ROLE,
    SELECTION_SHA256,
    STUDY,
    SUPERSEDED,
    TRIAL_ID,
    TRIAL_KEY,
    VERSION,
)
from slotsweep.train.result import EpochMetrics, TrialResult

SYSTEM_METRICS_INTERVAL_S = 5.0  # MLflow's own MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL overrides


# what a store says when a row another process just inserted is inserted again
_DUPLICATE_ROW = ("UNIQUE constraint failed", "duplicate key value")


def log_data_inputs(client: MlflowClient, run_id: str, inputs: list[DatasetInput]) -> None:
    """Logs a run's data inputs. Concurrent trials of one experiment log the same data set, and
    MLflow looks a dataset up before it inserts it: two trials may both insert it, and one then
    fails on the unique constraint (its transaction rolled back). Tried again, it finds the
    other's row and links to it."""
    for attempt in range(3):
        try:
            client.log_inputs(run_id, datasets=inputs)
            return
        except MlflowException as error:
            if attempt == 2 or not any(text in str(error) for text in _DUPLICATE_ROW):
                raise


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
    def start(
        cls, uri: str, experiment: str, study_name: str, description: str, resume: bool
    ) -> StudyRun:
        """A new parent run, or with `resume` the study's latest one (reopened)."""
        client, commit = MlflowClient(uri), git_commit()
        exp_id = experiment_id(client, experiment)
        if resume:
            previous = find_runs(
                client, exp_id, f"tags.`{ROLE}` = 'study' and tags.`{STUDY}` = '{study_name}'"
            )
            if previous:
                run_id = previous[0].info.run_id
                client.update_run(run_id, status="RUNNING")
                return cls(client, exp_id, run_id, commit)
        tags = _tags("study", commit, {STUDY: study_name, NOTE: description})
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
        return find_runs(
            self.client, self.experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.run_id}'"
        )


def finished_trial_keys(runs: list[Run]) -> set[str]:
    """Trial keys of the FINISHED runs among a parent's children (a resumed launch skips them)."""
    return {run.data.tags.get(TRIAL_KEY, "") for run in runs if run.info.status == "FINISHED"}


def finished_search_trials(
    runs: list[Run], metrics: list[str]
) -> list[tuple[dict[str, str], list[float]]]:
    """(params, objective values) of the FINISHED Optuna trials among a parent's children."""
    return [
        (dict(run.data.params), [run.data.metrics[m] for m in metrics])
        for run in runs
        if run.info.status == "FINISHED"
        and run.data.tags.get(PHASE) == "search"
        and SUPERSEDED not in run.data.tags  # of an earlier plan (`--resume --allow-changes`)
        and all(m in run.data.metrics for m in metrics)
    ]


class MlflowTrialRun:
    """The MLflow run of one trial, found again by its trial key when a study resumes
    (`trial_run.run_trial` is the trial itself, training wrapped in this run)."""

    def __init__(self, client: MlflowClient, run: Run) -> None:
        self.client, self.run = client, run
        self.run_id = run.info.run_id
        self.logged: set[tuple[str, int]] = set()  # (phase, epoch) already in a reopened run
        self.monitor = None  # MLflow's system-metrics sampler while the trial trains
        self.held: list[Metric] = []  # the last epoch's metrics, written with the final ones

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
        """Extra tags (where the trial runs); a restored trial overwrites them. Tags the run
        already holds (given when it was created) are not written again."""
        held = self.run.data.tags
        changed = [RunTag(k, v) for k, v in tags.items() if held.get(k) != v]
        if changed:
            self.client.log_batch(self.run_id, tags=changed)

    @property
    def finished(self) -> bool:
        return self.run.info.status == "FINISHED"

    @classmethod
    def open(
        cls,
        uri: str,
        experiment: str,
        config: ResolvedConfig,
        *,
        trial_key: str,
        trial_id: str,
        study_name: str | None = None,
        parent_run_id: str | None = None,
        phase: str = "fixed",
        commit: str | None = None,
        extra_tags: dict[str, str] | None = None,
    ) -> MlflowTrialRun:
        """The finished run of this trial key under the parent, else its newest unfinished run
        that saved a checkpoint (reopened: the trial goes on from there), else a new one (stale
        runs removed) created with `extra_tags` (where it runs) among its tags."""
        client = MlflowClient(uri)
        if parent_run_id:
            runs = find_runs(
                client,
                experiment,
                f"tags.`{TRIAL_KEY}` = '{trial_key}' and "
                f"tags.`{MLFLOW_PARENT_RUN_ID}` = "
                f"'{parent_run_id}'",
            )
            for run in runs:
                if run.info.status == "FINISHED":
                    return cls(client, run)
            resumable = next((run for run in runs if CHECKPOINT in run.data.tags), None)
            for run in runs:
                if run is not resumable:
                    client.delete_run(run.info.run_id)
            if resumable is not None:
                return cls.reopen(uri, resumable.info.run_id)
        tags = _tags(
            "trial",
            commit,
            {
                **(extra_tags or {}),
                TRIAL_ID: trial_id,
                TRIAL_KEY: trial_key,
                PHASE: phase,
                MLFLOW_PARENT_RUN_ID: parent_run_id,
                STUDY: study_name,
            },
        )
        k = f"-k{config.k}" if config.method == "slot" else ""
        name = f"{config.method}-{config.arch}{k}-s{config.seed}-{trial_key[:6]}"
        # three writes: the run with every tag (its name among them), the params, the config
        run = client.create_run(experiment, tags={**tags, MLFLOW_RUN_NAME: name}, run_name=name)
        trial = cls(client, run)
        trial.monitor = _system_metrics(uri, trial.run_id)
        params = [Param(k, v) for k, v in trial_params(config).items()]
        client.log_batch(trial.run_id, params=params)
        client.log_dict(trial.run_id, config.model_dump(), "trial_config.json")
        return trial

    def log_epoch(self, metrics: EpochMetrics, last: bool = False) -> None:
        """Per-epoch metrics at step = epoch (once: a reopened run skips epochs it holds). The
        `last` epoch's are held and written with the final metrics (or the failure) in one batch.
        """
        if (metrics.phase, metrics.epoch) in self.logged:
            return
        stamp = now_ms()
        batch = [
            Metric(key, value, stamp, metrics.epoch)
            for key, value in epoch_metric_values(metrics).items()
        ]
        if last:
            self.held = batch
            return
        # synchronous, one batch per epoch: MLflow's asynchronous queue would cost each run
        # about 0.9 s at its end (set_terminated waits for the queue's thread to stop)
        self.client.log_batch(self.run_id, metrics=batch)

    def _write_held(self) -> None:
        """The last epoch's metrics, when a run ends without its final batch."""
        held, self.held = self.held, []
        if held:
            self.client.log_batch(self.run_id, metrics=held)

    def finish(self, result: TrialResult) -> None:
        """Final metrics and tags in one batch, the data, the trained network, the result JSON,
        and FINISHED once every write is in."""
        self._stop_monitor()
        stamp = now_ms()
        batch = [Metric(key, value, stamp, 0) for key, value in result.final_metrics().items()]
        tags = [RunTag(IMPL, result.impl), RunTag(DEVICE, result.device)]
        if result.selection_sha256:
            tags.append(RunTag(SELECTION_SHA256, result.selection_sha256))
        network = network_file(str(result.params.get("method", "slot")))
        if result.ticket is not None:
            tags.append(RunTag(NETWORK_TAG, f"{NETWORK_DIR}/{network}"))
        held, self.held = self.held, []
        self.client.log_batch(self.run_id, metrics=held + batch, tags=tags)
        self.client.log_dict(self.run_id, result.to_dict(), "result.json")
        if result.datasets:
            log_data_inputs(self.client, self.run_id, [dataset_input(d) for d in result.datasets])
        if result.ticket is not None:
            self._log_network(network, result.ticket)
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FINISHED))

    def _log_network(self, name: str, ticket: bytes) -> None:
        """The best-validation epoch's network: a ticket (slot, edge-popup) or the weights."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_bytes(ticket)
            self.client.log_artifact(self.run_id, str(path), NETWORK_DIR)

    def _stop_monitor(self) -> None:
        if self.monitor is not None:
            self.monitor.finish()
            self.monitor = None

    def fail(self, error: BaseException) -> None:
        """Records the error (tag and traceback artifact) and FAILED."""
        self._stop_monitor()
        self._write_held()
        message = f"{type(error).__name__}: {error}"
        self.client.set_tag(self.run_id, ERROR, message[:5000])
        text = "".join(traceback.format_exception(error))
        self.client.log_text(self.run_id, text, "error.txt")
        self.client.set_terminated(self.run_id, "FAILED")

    def stop(self) -> None:
        """Records that the trial was stopped (KILLED), not that it failed."""
        self._stop_monitor()
        self._write_held()
        _kill(self.client, self.run_id)

    def final_metrics(self) -> dict[str, float]:
        """The metrics a finished run holds (used when a resumed study skips it)."""
        return dict(self.client.get_run(self.run_id).data.metrics)


def _system_metrics(uri: str, run_id: str):  # noqa: ANN202 (MLflow's class, imported lazily)
    """MLflow's sampler of CPU, memory, disk, network (and GPU with pynvml) for a run it did not
    start itself (trials are created through MlflowClient, not `mlflow.start_run`)."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(
        run_id, sampling_interval=SYSTEM_METRICS_INTERVAL_S, tracking_uri=uri
    )
    monitor.start()
    return monitor
