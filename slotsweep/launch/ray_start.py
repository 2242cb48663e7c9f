"""A launch's Ray: a local Ray started for it, or the cluster at `--address` connected to, with
Tune's settings and what every trial gets from the job (MLflow's credentials)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import ray

from slotsweep.launch import local_ray
from slotsweep.launch.stop import signals_kept_from_children
from slotsweep.launch.workers import cluster_summary, credentials_env

# A local Ray starts one idle worker process per CPU with its driver; Tune's trials never run
# in them (Tune gives its trial actors a runtime env of their own, so Ray starts their workers
# when they are asked for), and on a small machine their start-up (each imports Ray) delays the
# first trials' workers. Measured in docs/results.md (start-up).
LOCAL_RAY_CONFIG = {"prestart_worker_first_driver": False}


def tune_environment() -> None:
    """Ray Tune's settings for a launch, set in this process before Ray starts (a user's own
    value of a setdefault kept)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C stops as SIGTERM does (`stop`)
    # a failed trial's final result carries NaN objectives and the failure, not every metric
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # MLflow is the record of every result: Tune's own per-result files (JSON, CSV,
    # TensorBoard) would cost the driver a write per result and per trial
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # A failed trial is one line in the live view; its traceback goes to its error.txt
    # (MLflow, and the trial's folder), not through Tune's logger to the console.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)


def start_ray(
    study_name: str,
    address: str | None,
    num_cpus: int | None,
    num_gpus: int | None,
    say: Callable[[str], None] = print,
) -> bool:
    """Connects to `address`, else starts a local Ray (recorded for `local_ray.end_leftovers`);
    True when this launch owns it, False when this process is connected already."""
    if ray.is_initialized():
        return False
    tune_environment()
    # workers log to their trial's files, not into the live view; MLflow credentials reach
    # every trial through the job's runtime env (never as params, tags or log lines)
    common = {
        "logging_level": logging.WARNING,
        "log_to_driver": False,
        "runtime_env": {"env_vars": credentials_env()},
    }
    if address:
        ray.init(address=address, **common)
        say(cluster_summary())
        return True
    # Ray warns at every new local cluster that it turned its token auth on (its safe
    # default, kept): news the first time, noise in every launch's output after that
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    with signals_kept_from_children():  # a group's SIGTERM: for the launcher only
        ray.init(
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            num_gpus=num_gpus,
            _system_config=LOCAL_RAY_CONFIG,
            **common,
        )
    local_ray.record(study_name)
    return True
