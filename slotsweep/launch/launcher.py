"""One launch of a study on Ray Tune: its parent run, the fixed trials as a Tune grid, the Optuna
search, the live view, and Ray started and stopped when the launch owns it."""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray import tune
from rich.console import Console

from slotsweep.config import ResolvedConfig, TrialConfig, trial_key
from slotsweep.launch import local_ray
from slotsweep.launch.adapter import (
    ProgressCallback,
    asha_scheduler,
    objective,
    optuna_sampler,
    tune_domain,
    tune_trial,
)
from slotsweep.launch.logview import progress_view
from slotsweep.launch.progress import StudyProgress, distinguishing_keys, trial_name
from slotsweep.launch.ray_start import start_ray
from slotsweep.launch.restore import CHECKPOINTS_KEPT
from slotsweep.launch.stop import DEFAULT_GRACE_S, LaunchStop
from slotsweep.study.identity import study_plan
from slotsweep.study.schema import Study
from slotsweep.study.store import absolute_tracking_uri
from slotsweep.tracking.identity import record_plan
from slotsweep.tracking.runs import StudyRun, finished_search_trials, finished_trial_keys
from slotsweep.tracking.store import TrackingTarget, prepare_store

if TYPE_CHECKING:
    from slotsweep.tracking.runs import Run


@dataclass(frozen=True)
class LaunchOptions:
    """What the command line adds to a study."""

    address: str | None = None
    tracking_uri: str | None = None
    max_concurrent: int | None = None
    resume: bool = False
    num_cpus: int | None = None  # local Ray only; None: every core of this machine
    storage_path: str | None = None  # Tune's storage; None: the study's `storage`, else below
    num_gpus: int | None = None  # local Ray only: logical GPUs (None: those Ray detects)
    grace_s: float = DEFAULT_GRACE_S  # after SIGTERM/SIGINT: how long trials may take to stop


DEFAULT_STORAGE = "ray_results"
# A trial's process (Ray actor) runs the launch's next trials: no new process, imports or data
# per trial. Every trial sets what it changes in the process (threads, seeds, GPU share) itself.
REUSE_ACTORS = os.environ.get("SLOTSWEEP_REUSE_ACTORS", "1") != "0"


@dataclass
class LaunchSummary:
    """What a launch did: its MLflow coordinates, trial counts, and where time went."""

    tracking_uri: str
    experiment: str
    parent_run_id: str
    trials: int
    failed: int
    wall_time_s: float
    earlier_run_ids: frozenset[str] = frozenset()  # finished before a `--resume`, not run now
    stopped_by: str | None = None  # the signal that stopped the launch (SIGTERM, SIGINT)


def _absolute_data_root(settings: Any) -> Any:
    """Trials run in their own folders: a relative data root must be made absolute first
    (`settings`: a TrialConfig, or a dict of trial keys)."""
    if isinstance(settings, TrialConfig):
        root = settings.data_root
        return (
            settings.model_copy(update={"data_root": str(Path(root).resolve())})
            if root
            else settings
        )
    root = settings.get("data_root")
    return {**settings, "data_root": str(Path(root).resolve())} if root else settings


def storage_uri(storage: str) -> str:
    """Tune's storage_path: a URI (s3://, gs://, ...) as given, a folder made absolute."""
    return storage if "://" in storage else str(Path(storage).resolve())


@dataclass
class _Opened:
    """What a launch opens in its store before its trials run."""

    parent: StudyRun
    target: TrackingTarget
    earlier: list[Run]  # the parent's trial runs of earlier launches (`--resume`)
    fixed: list[ResolvedConfig]  # the fixed trials still to run
    names: dict[str, str]  # every fixed trial's name in the live view, by its trial key


def _signals_to_main_thread(work: Callable[[], Any]) -> Any:
    """Runs `work` with SIGTERM and SIGINT blocked in this (non-main) thread: a signal goes to
    the main thread, which handles it at once (`LaunchStop`), as when `work` ran there."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    return work()


def _study_status(progress: StudyProgress) -> str:
    """KILLED when trials never ran (Tune stops gracefully on Ctrl-C), FAILED when all failed."""
    if progress.done < progress.total:
        return "KILLED"
    return "FAILED" if progress.failed and not progress.durations else "FINISHED"


class Launcher:
    """One launch of a study: a parent MLflow run and one or two Tune runs (fixed, searched)."""

    def __init__(self, study: Study, options: LaunchOptions, console: Console) -> None:
        self.study, self.options, self.console = study, options, console
        self.uri = absolute_tracking_uri(study.tracking_uri(options.tracking_uri))
        self.concurrency = options.max_concurrent or study.max_concurrent
        self.threads = max(1, math.floor(study.resources.cpu))
        self.storage = storage_uri(options.storage_path or study.storage or DEFAULT_STORAGE)
        self.parent_run_id: str | None = None
        self.stop = LaunchStop("", options.grace_s, lambda line: console.print(line, markup=False))

    def run(self) -> LaunchSummary:
        """Runs every trial; Ray is started (and stopped) here unless an address is given."""
        started = time.perf_counter()
        study, stop = self.study, self.stop
        stop.install()  # a signal from here on stops the launch (again after ray.init)
        if not self.options.address:
            # a killed launch's trials may still be training (and ending their runs): end them
            # before the store says which trials are left, so that none is run twice
            ended = local_ray.end_leftovers(study.name)
            if ended:
                self.console.print(f"ended {ended} Ray processes left by a killed launch")
        opened, own_ray = self._open_and_start_ray()
        parent, earlier, fixed = opened.parent, opened.earlier, opened.fixed
        progress = StudyProgress(
            total=len(fixed) + study.searched_trial_count(),
            metric=study.search.metric[0],
            mode=study.search.mode[0],
            max_concurrent=self.concurrency,
        )
        stop.running = progress.running  # the trials a stop waits for
        try:
            with progress_view(progress, self.console):
                if not stop.requested:
                    self._run_fixed(fixed, opened.names, opened.target, progress)
                if progress.done == len(fixed) and not stop.requested:
                    self._run_search(earlier, opened.target, progress)
        except BaseException:
            parent.finish("KILLED")  # interrupted: `--resume` reopens this parent run
            raise
        finally:
            self._stop_ray(own_ray)
        parent.finish("KILLED" if stop.requested else _study_status(progress))
        self._summarize(parent.run_id)
        return LaunchSummary(
            self.uri,
            study.experiment_name,
            parent.run_id,
            progress.done,
            len(progress.failed),
            time.perf_counter() - started,
            frozenset(run.info.run_id for run in earlier if run.info.status == "FINISHED"),
            stop.signal_name,
        )

    def _open_and_start_ray(self) -> tuple[_Opened, bool]:
        """The store and the parent run (`_open`), made in a thread while Ray starts here: Ray
        mostly waits for its processes to come up, and a fresh SQLite store's tables take a
        second or more to create. An error of either stops both and is raised as it was."""
        own_ray = False
        try:
            # leaving the pool waits for the store work: none goes on behind an error of Ray's
            with ThreadPoolExecutor(1, thread_name_prefix="slotsweep-store") as pool:
                opening = pool.submit(_signals_to_main_thread, self._open)
                own_ray = self._start_ray()
                self.stop.install()  # over Ray's SIGTERM handler (a native dump, then exit 1)
                opened = opening.result()
        except BaseException:
            self._stop_ray(own_ray)
            raise
        self.stop.attach(opened.parent.run_id)  # with Ray up: told to the trials
        return opened, own_ray

    def _open(self) -> _Opened:
        """The store made ready (a fresh SQLite store's tables created), the parent run started
        (or reopened) with the study and its plan, and the fixed trials still to run."""
        study = self.study
        prepare_store(self.uri)
        parent = StudyRun.start(
            self.uri, study.experiment_name, study.name, study.description, self.options.resume
        )
        self.parent_run_id = parent.run_id
        parent.client.log_dict(parent.run_id, study.model_dump(mode="json"), "study.json")
        record_plan(parent.client, parent.run_id, study_plan(study))  # checked by --resume
        target = TrackingTarget(
            self.uri, parent.experiment_id, parent.run_id, study.name, commit=parent.commit
        )
        earlier = parent.children() if self.options.resume else []
        fixed, names = self._pending(finished_trial_keys(earlier))
        return _Opened(parent, target, earlier, fixed, names)

    def _stop_ray(self, own_ray: bool) -> None:
        if own_ray:
            ray.shutdown()
            local_ray.forget(self.study.name)
        self.stop.uninstall()

    def summary_so_far(self) -> LaunchSummary | None:
        """Where a launch stopped at once (a second signal) left its runs, if it made any."""
        if self.parent_run_id is None:
            return None
        return LaunchSummary(self.uri, self.study.experiment_name, self.parent_run_id, 0, 0, 0.0)

    def _pending(self, finished: set[str]) -> tuple[list[ResolvedConfig], dict[str, str]]:
        """The fixed trials still to run (data roots made absolute), and every fixed trial's
        name in the live view by its trial key: named by the settings the study spells out, so
        a default that follows from them (GS's lr at K > 8) does not name a trial."""
        spelled = [g.config(seed) for g in self.study.groups if g.runs for seed in g.seeds]
        keys = distinguishing_keys([config.model_dump() for config in spelled])
        pending, names = [], {}
        for config in spelled:
            resolved = config.resolved()
            key = trial_key(resolved)
            names[key] = trial_name(config.model_dump(), keys)
            if key not in finished:
                pending.append(_absolute_data_root(resolved))
        return pending, names

    def _summarize(self, parent_run_id: str) -> None:
        """The parent run as the study's summary; a failure here does not fail the launch."""
        from slotsweep.tracking.summary import summarize_study

        try:
            summarize_study(self.uri, self.study.experiment_name, parent_run_id, self.study)
        except Exception as error:  # noqa: BLE001 - the trials are safe in MLflow already
            self.console.print(f"[yellow]could not write the study summary:[/] {error}")

    def _start_ray(self) -> bool:
        """Connects to `--address`, else starts a local Ray; True when this launch owns it."""
        options, console = self.options, self.console
        return start_ray(
            self.study.name,
            options.address,
            options.num_cpus,
            options.num_gpus,
            say=lambda line: console.print(line, markup=False),
        )

    def _record_ray(self) -> None:
        """Ray's agents start after `ray.init`: recorded again once trials start."""
        if not self.options.address:
            local_ray.record(self.study.name)

    def _trainable(self, target: TrackingTarget, base: dict[str, Any]) -> Any:
        resources = {"cpu": self.study.resources.cpu, "gpu": self.study.resources.gpu}
        trainable = tune.with_parameters(
            tune_trial,
            base=base,
            target=target,
            threads=self.threads,
            checkpoint_every=self.study.checkpoint_every,
            gpu=self.study.resources.gpu,
            objectives=tuple(self.study.search.metric),
        )
        return tune.with_resources(trainable, resources)

    def _fit(
        self,
        trainable: Any,
        space: dict[str, Any],
        tune_config: tune.TuneConfig,
        progress: StudyProgress,
        name: str,
        namer: Any = None,
    ) -> None:
        run_config = tune.RunConfig(
            name=f"{self.study.name}-{name}-{int(time.time())}",
            storage_path=self.storage,
            verbose=0,
            callbacks=[ProgressCallback(progress, self._record_ray, self.console, namer)],
            stop=self.stop,  # a signal: trials save and wait, then Tune stops them all
            # a lost worker or node: the trial restarts from its last checkpoint
            failure_config=tune.FailureConfig(max_failures=self.study.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
        )
        tuner = tune.Tuner(
            trainable, param_space=space, tune_config=tune_config, run_config=run_config
        )
        tuner.fit()

    def _finetune_epochs(self) -> int:
        return int(self.study.trial.get("finetune_epochs", 0))

    def _run_fixed(
        self,
        fixed: list[ResolvedConfig],
        names: dict[str, str],
        target: TrackingTarget,
        progress: StudyProgress,
    ) -> None:
        if not fixed:
            return
        metric, mode = objective(self.study)
        scheduler = asha_scheduler(self.study, self._finetune_epochs())
        # Ray refuses a metric given both to the TuneConfig and to its scheduler
        follow = isinstance(metric, str) and scheduler is None
        config = tune.TuneConfig(
            metric=metric if follow else None,
            mode=mode if follow else None,
            scheduler=scheduler,
            max_concurrent_trials=self.concurrency,
            trial_dirname_creator=lambda trial: trial.trial_id,
            reuse_actors=REUSE_ACTORS,
        )
        space = {"trial": tune.grid_search(fixed)}
        namer = lambda params: names[trial_key(params["trial"])]  # noqa: E731
        self._fit(self._trainable(target, {}), space, config, progress, "fixed", namer)

    def _run_search(
        self, earlier: list[Run], target: TrackingTarget, progress: StudyProgress
    ) -> None:
        """Optuna's trials, each sampled when a slot frees (grid and random are fixed).

        On `--resume` the finished Optuna trials are given back to Optuna as evaluated points,
        so the search continues from them and only the remaining samples run.
        """
        study = self.study
        dims = study.search_space()
        if not dims:
            return
        # imported for a study that searches only: Optuna takes seconds to import
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        space = {key: tune_domain(dim) for key, dim in dims.items()}
        # Optuna explores configurations, each with the first seed; seeds repeat fixed trials
        base = {**_absolute_data_root(study.base_trial()), "seed": study.seeds[0]}
        metric, mode = objective(study)
        points, rewards = self._evaluated_points(earlier, base, list(dims))
        remaining = study.search.num_samples - len(points)
        progress.total -= len(points)
        if remaining <= 0:
            return
        searcher = OptunaSearch(
            metric=metric,
            mode=mode,
            sampler=optuna_sampler(study, len(points)),
            points_to_evaluate=points or None,
            evaluated_rewards=rewards or None,
        )
        config = tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=self.concurrency),
            scheduler=asha_scheduler(study, self._finetune_epochs()),
            num_samples=remaining,
            trial_dirname_creator=lambda trial: trial.trial_id,
            reuse_actors=REUSE_ACTORS,
        )
        namer = lambda params: trial_name({**base, **params}, list(dims))  # noqa: E731
        self._fit(
            self._trainable(replace(target, phase="search"), base),
            space,
            config,
            progress,
            "search",
            namer,
        )

    def _evaluated_points(
        self, earlier: list[Run], base: dict[str, Any], keys: list[str]
    ) -> tuple[list[dict[str, Any]], list[Any]]:
        """Finished Optuna trials as (points, rewards), values typed by TrialConfig."""
        metrics = self.study.search.metric
        points, rewards = [], []
        for params, values in finished_search_trials(earlier, metrics):
            config = TrialConfig.from_params({**base, **{k: params[k] for k in keys}})
            points.append({key: getattr(config, key) for key in keys})
            rewards.append(values[0] if len(values) == 1 else values)
        return points, rewards
