"""Per-trial overhead of a launch: N tiny trials (smoke's one-epoch Lenet on 512 synthetic
examples) launched as a user would (`slotsweep launch`, output to a file), then timed from
MLflow's own records.

Prints the wall time, the trials' own time (`train_time_s`), start-up (launch to the first trial
run), the overhead per trial per slot ((wall - start-up - own / slots) / (trials / slots)), and
where the overhead goes:
- in-run: a trial run's MLflow time outside training (run creation, tags, params, the config,
  the system-metrics thread, the final writes), from the run's start and end against its
  `train_time_s`;
- between runs: a slot's gap from one run's end to its next run's start (Tune's bookkeeping,
  a new Ray actor: process start, imports; with reused actors only Tune's bookkeeping);
- measured apart in this process: importing the trial's code in a fresh interpreter, loading
  the trial's data, and each MLflow call of a trial run on a SQLite store.

    .venv/bin/python bench/bench_overhead.py --trials 100 [--slots 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDY_NAME = "overhead"  # its experiment, too


def launch(folder: Path, trials: int, slots: int, extra: list[str]) -> tuple[float, float]:
    """Runs the study; returns when it started (epoch seconds) and its wall time."""
    seeds = list(range(-(-trials // 5)))
    args = [
        sys.executable,
        "-m",
        "slotsweep",
        "launch",
        str(ROOT / "studies" / "smoke.yaml"),
        "--set",
        f"name={STUDY_NAME}",
        "--set",
        "space.k.grid=[1,2,4,8,16]",
        "--set",
        f"seeds={seeds}",
        "--set",
        "baselines=[]",
        "--max-concurrent",
        str(slots),
        "--num-cpus",
        str(slots),
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    began, started = time.time(), time.perf_counter()
    with open(folder / "launch.log", "w") as log:
        done = subprocess.run(args, cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"launch failed ({done.returncode}): see {folder / 'launch.log'}")
    return began, wall


def trial_runs(folder: Path) -> list:
    from mlflow.tracking import MlflowClient

    from slotsweep.tracking.store import find_runs

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(STUDY_NAME)
    return find_runs(client, experiment.experiment_id, "tags.`slotsweep.role` = 'trial'")


def slot_gaps(runs: list, slots: int) -> list[float]:
    """Each run's wait after the previous run on the slot it took (runs in start order, a run
    taking the slot that freed first)."""
    free = []  # end times of the runs on each slot
    gaps = []
    for run in sorted(runs, key=lambda r: r.info.start_time):
        start = run.info.start_time
        if len(free) < slots:
            free.append(run.info.end_time)
            continue
        slot = min(range(len(free)), key=lambda i: free[i])
        gaps.append(max(0.0, (start - free[slot]) / 1000))
        free[slot] = run.info.end_time
    return gaps


def parts_apart(folder: Path) -> dict[str, float]:
    """Seconds for the pieces of a trial's overhead, each measured alone here."""
    parts = {}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import slotsweep.launch.adapter, slotsweep.train.trainer"],
        check=True,
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))},
    )
    parts["fresh interpreter + imports"] = time.perf_counter() - started
    from slotsweep.config import TrialConfig
    from slotsweep.train.build import trial_data

    config = TrialConfig(
        arch="lenet_300_100", dataset="synthetic", epochs=1, train_subset=512
    ).resolved()
    started = time.perf_counter()
    trial_data(config)
    parts["data loading (synthetic, 512)"] = time.perf_counter() - started
    parts.update(mlflow_parts(folder, config))
    return parts


def mlflow_parts(folder: Path, config) -> dict[str, float]:  # noqa: ANN001
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    from slotsweep.tracking.params import trial_params
    from slotsweep.tracking.runs import _system_metrics

    client = MlflowClient(f"sqlite:///{folder / 'apart.db'}")
    exp = client.create_experiment("apart")
    times: dict[str, list[float]] = {}

    def timed(name: str, call):  # noqa: ANN001, ANN202
        started = time.perf_counter()
        value = call()
        times.setdefault(name, []).append(time.perf_counter() - started)
        return value

    for _ in range(5):
        run = timed("mlflow: create run + tags", lambda: client.create_run(exp, tags={"a": "b"}))
        run_id = run.info.run_id
        params = [Param(k, v) for k, v in trial_params(config).items()]
        timed("mlflow: params", lambda: client.log_batch(run_id, params=params))  # noqa: B023
        timed(
            "mlflow: config artifact",
            lambda: client.log_dict(run_id, config.model_dump(), "c.json"),  # noqa: B023
        )
        monitor = timed(
            "mlflow: system-metrics thread start",
            lambda: _system_metrics(client.tracking_uri, run_id),  # noqa: B023
        )
        timed("mlflow: system-metrics thread stop", monitor.finish)
        timed(
            "mlflow: final writes (result, end)",
            lambda: (
                client.log_dict(run_id, {"x": 1}, "result.json"),  # noqa: B023
                client.set_terminated(run_id),  # noqa: B023
            ),
        )
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    parser.add_argument("extra", nargs="*", help="more `slotsweep launch` arguments")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    folder.mkdir(parents=True, exist_ok=True)
    began, wall = launch(folder, args.trials, args.slots, args.extra)
    report(folder, began, wall, args.slots)


def report(folder: Path, began: float, wall: float, slots: int) -> None:
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    runs = trial_runs(folder)
    launched = min(r.info.start_time for r in runs) / 1000
    own = sum(r.data.metrics.get("train_time_s", 0.0) for r in runs)
    in_run = [
        (r.info.end_time - r.info.start_time) / 1000 - r.data.metrics.get("train_time_s", 0.0)
        for r in runs
    ]
    gaps = slot_gaps(runs, slots)
    tail = time.time() - max(r.info.end_time for r in runs) / 1000
    startup = launched - began
    per_slot = len(runs) / slots
    overhead = (wall - startup - own / slots) / per_slot
    span = (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000
    steady = (span - own / slots) / per_slot
    rows = [
        ("trials", f"{len(runs)} ({slots} slots)"),
        ("wall time", f"{wall:.1f} s"),
        ("trials' own time", f"{own:.1f} s, {own / slots:.1f} s over the slots"),
        ("start-up (launch to first trial run)", f"{startup:.1f} s"),
        ("overhead per trial per slot", f"{overhead:.3f} s"),
        ("  of which between the first run's start and the last's end", f"{steady:.3f} s"),
        ("  in-run MLflow time outside training (mean)", f"{statistics.mean(in_run):.3f} s"),
        ("  gap between runs on a slot (mean)", f"{statistics.mean(gaps or [0]):.3f} s"),
        ("  after the last run (summary, Ray stop)", f"{tail:.1f} s (approx.)"),
    ]
    rows += [(f"  apart: {k}", f"{v:.3f} s") for k, v in parts_apart(folder).items()]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"(folder: {folder})")


if __name__ == "__main__":
    main()
