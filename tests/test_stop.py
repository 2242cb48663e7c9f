"""A launch stopped by a real signal mid-trial, as SLURM (SIGTERM at a time limit or a
preemption, to the launcher or to every process of the job), Kubernetes (SIGTERM before a pod
is killed) and Ctrl-C (SIGINT, the same handler) stop it: trials save and stop, runs KILLED,
exit code 3 with the `--resume` command; that command then finishes the study with nothing
lost and nothing run twice."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import (
    CLI_ENV,
    RAY_SLOW_START,
    free_port,
    kill_session,
    logged_epochs,
    popen_cli,
    run_cli,
    session_processes,
    start_mlflow_server,
    trial_runs,
    wait_until,
)
from mlflow.tracking import MlflowClient

from slotsweep.launch.lock import lock_path
from slotsweep.launch.stop import STOPPED_EXIT_CODE
from slotsweep.tracking.tags import CHECKPOINT, CHECKPOINT_DAMAGED, RESUMED_FROM_EPOCHS
from slotsweep.train.checkpoint import TrainingState

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 30  # about 0.25 s an epoch (idle): a trial runs for tens of polls
ENV = {**CLI_ENV, **RAY_SLOW_START}


def _study(tmp_path: Path, name: str, epochs: int = EPOCHS) -> Path:
    """The smoke study (two slot trials and a dense baseline, two at a time), EPOCHS epochs, a
    checkpoint every 3: a stop between two saves must make one of its own."""
    path = tmp_path / f"{name}.yaml"
    text = (ROOT / "studies" / "smoke.yaml").read_text().replace("name: smoke", f"name: {name}")
    path.write_text(text.replace("epochs: 1", f"epochs: {epochs}") + "checkpoint_every: 3\n")
    return path


def launch_args(study: Path) -> tuple[str, ...]:
    return ("launch", str(study), "--num-cpus", "2")


def _start(tmp_path: Path, study: Path, log_path: Path, **env: str) -> subprocess.Popen:
    return popen_cli(
        *launch_args(study),
        cwd=tmp_path,
        env={**ENV, **env},
        start_new_session=True,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )


RUNNING_TRIALS = """
    SELECT r.run_uuid, COUNT(m.step), p.value FROM runs r
    JOIN experiments e ON e.experiment_id = r.experiment_id AND e.name = ?
    JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'slotsweep.role' AND t.value = 'trial'
    LEFT JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = 'slotsweep.pid'
    LEFT JOIN metrics m ON m.run_uuid = r.run_uuid AND m.key = 'train_loss'
    WHERE r.status = 'RUNNING' GROUP BY r.run_uuid
"""


def _running_trials(store: Path, experiment: str) -> dict[str, tuple[int, int]]:
    """Run id -> (epochs logged, its process id), of the trials RUNNING in a SQLite store, read
    from its file: in milliseconds, and readable while the server is frozen."""
    with contextlib.suppress(sqlite3.OperationalError):  # no file or tables yet, or locked
        with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
            rows = db.execute(RUNNING_TRIALS, (experiment,)).fetchall()
            return {run: (epochs, int(pid)) for run, epochs, pid in rows}
    return {}


def _two_running(store: Path, experiment: str, low: int, high: int) -> dict | None:
    """The two RUNNING trials (run id -> (epochs logged, pid)), once two run with between `low`
    and `high` epochs logged each."""
    running = _running_trials(store, experiment)
    if len(running) == 2 and all(low <= n <= high for n, _ in running.values()):
        return running
    return None


def _stop_mid_trial(store: Path, name: str, launcher, log: Path, stop: Callable) -> dict:
    """`stop()` (the signal) while two trials run past their first checkpoint (epoch 3) and
    before their last epoch: their processes are frozen (SIGSTOP) the moment they are seen so,
    and go on only once the launcher has taken the signal: no trial ends in between, whatever
    the machine's speed. Returns run id -> epochs logged at the stop."""

    def frozen_with_two_running():
        running = _two_running(store, name, 4, EPOCHS - 2)  # not in its last epoch
        for _, pid in (running or {}).values():
            os.kill(pid, signal.SIGSTOP)
        return running

    running = wait_until(
        frozen_with_two_running,
        timeout=540,
        what="two trials mid-way",
        process=launcher,
        every=0.02,
        log=log,
    )
    try:
        stop()
        wait_until(
            lambda: "SIGTERM received: stopping" in log.read_text(),
            timeout=60,
            what="the launcher taking the signal",
            process=launcher,
            every=0.02,
            log=log,
        )
    finally:
        for _, pid in running.values():
            os.kill(pid, signal.SIGCONT)
    return {run: epochs for run, (epochs, _) in running.items()}


def _state_file(location: str) -> Path:
    return Path(location) / "training_state.pt"


def test_sigterm_mid_trial_stops_gracefully_and_the_printed_resume_finishes(tmp_path):
    """SIGTERM to the launcher while two trials run: a second launch meanwhile is refused; the
    stop saves both trials; a changed study's `--resume` is refused naming the key; their
    latest checkpoints are then damaged (one cut short, one garbled) and the printed `--resume`
    goes on from the ones before, naming the files."""
    study, log = _study(tmp_path, "stopped"), tmp_path / "launch.log"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    launcher = _start(tmp_path, study, log)
    lock = lock_path(f"sqlite:///{tmp_path / 'mlflow.db'}", "stopped")
    try:
        wait_until(
            lambda: lock.exists() and f'"pid": {launcher.pid}' in lock.read_text(),
            timeout=300,
            what="the launch holding its lock",
            process=launcher,
            log=log,
        )
        second = run_cli(*launch_args(study), cwd=tmp_path, env=ENV)
        assert second.returncode == 2, second.stdout + second.stderr
        assert (
            f"already being launched on this store (host {socket.gethostname()}, pid "
            f"{launcher.pid}, since " in " ".join(second.stderr.split())
        )
        at_stop = _stop_mid_trial(  # the launcher only: SLURM's --signal=B, `kill`
            tmp_path / "mlflow.db",
            "stopped",
            launcher,
            log,
            lambda: launcher.send_signal(signal.SIGTERM),
        )
        assert launcher.wait(timeout=180) == STOPPED_EXIT_CODE, log.read_text()
        wait_until(
            lambda: not session_processes(launcher.pid), timeout=30, what="its processes gone"
        )
    finally:
        kill_session(launcher.pid)
    text = log.read_text()
    assert "SIGTERM received: stopping" in text
    assert "*** SIGTERM received" not in text and "Traceback" not in text  # no native dump
    killed = {r.info.run_id: r for r in trial_runs(client, "stopped") if r.info.status == "KILLED"}
    assert set(killed) == set(at_stop)  # the running ones, and only them
    assert all(r.info.status in ("KILLED", "FINISHED") for r in trial_runs(client, "stopped"))
    parent = client.search_runs(
        [client.get_experiment_by_name("stopped").experiment_id], "tags.`slotsweep.role` = 'study'"
    )
    assert [p.info.status for p in parent] == ["KILLED"]
    saved = {}
    for run_id, run in killed.items():  # each saved on the stop, past what was logged at it
        saved[run_id] = TrainingState.load(run.data.tags[CHECKPOINT]).epochs_done
        assert saved[run_id] >= at_stop[run_id]
    truncated, garbled = (_state_file(killed[i].data.tags[CHECKPOINT]) for i in sorted(killed))
    truncated.write_bytes(truncated.read_bytes()[:1000])
    data = bytearray(garbled.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    garbled.write_bytes(bytes(data))
    changed = run_cli(
        *launch_args(study), "--resume", "--set", f"trial.epochs={EPOCHS + 1}", cwd=tmp_path
    )
    assert (
        changed.returncode == 2 and f"- trial.epochs: {EPOCHS} -> {EPOCHS + 1}" in changed.stderr
    ), changed.stderr
    resume = re.search(r"go on with: (.+)$", text, re.MULTILINE).group(1)
    assert shlex.split(resume) == ["slotsweep", "launch", str(study), "--num-cpus", "2", "--resume"]
    done = run_cli(*shlex.split(resume)[1:], cwd=tmp_path, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    output = " ".join(done.stderr.split())
    for damaged in (truncated, garbled):
        assert f"damaged checkpoint {damaged} does not match its digest" in output
    trials = {r.info.run_id: r for r in trial_runs(client, "stopped")}
    assert len(trials) == 3 and all(r.info.status == "FINISHED" for r in trials.values())
    for run_id in at_stop:  # nothing lost, nothing twice; each went on from an earlier save
        assert logged_epochs(client, run_id) == list(range(1, EPOCHS + 1))
        resumed = int(trials[run_id].data.tags[RESUMED_FROM_EPOCHS])
        assert 3 <= resumed < saved[run_id]
        assert f"went on from epoch {resumed}" in trials[run_id].data.tags[CHECKPOINT_DAMAGED]


def test_two_launches_on_a_fresh_store_then_sigterm_to_the_group_leaves_nothing_alive(tmp_path):
    """Two launches of one study started together on a fresh store: one runs, the other is
    refused naming it; then SIGTERM to the runner's whole process group, as SLURM sends it to
    every process of a job, Ray's included (the launch sees SLURM_JOB_ID): the launch still
    stops gracefully."""
    study = _study(tmp_path, "interrupted")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    launchers = [_start(tmp_path, study, log, SLURM_JOB_ID="1") for log in logs]
    try:
        wait_until(
            lambda: any(p.poll() is not None for p in launchers), timeout=300, what="one refused"
        )
        refused = next(i for i, p in enumerate(launchers) if p.poll() is not None)
        runner, log = launchers[1 - refused], logs[1 - refused]
        assert launchers[refused].returncode == 2, logs[refused].read_text()
        assert f"pid {runner.pid}, since" in " ".join(logs[refused].read_text().split())
        _stop_mid_trial(
            tmp_path / "mlflow.db",
            "interrupted",
            runner,
            log,
            lambda: os.killpg(runner.pid, signal.SIGTERM),
        )
        assert runner.wait(timeout=180) == STOPPED_EXIT_CODE, log.read_text()
        for launcher in launchers:
            wait_until(
                lambda p=launcher: not session_processes(p.pid), timeout=30, what="processes gone"
            )
    finally:
        for launcher in launchers:
            kill_session(launcher.pid)
    text = log.read_text()
    assert "SIGTERM received: stopping" in text and "Traceback" not in text
    assert "go on with: slotsweep launch" in text
    killed = [r for r in trial_runs(client, "interrupted") if r.info.status == "KILLED"]
    assert len(killed) == 2 and all(CHECKPOINT in r.data.tags for r in killed)
    assert not [r for r in trial_runs(client, "interrupted") if r.info.status == "RUNNING"]


OUTAGE_S = 10  # long enough for trials' MLflow calls to fail and retry (MLflow backs off)
OUTAGE_EPOCHS = 20  # trials block on their logging while the server is down: fewer will do


def _server(tmp_path: Path, port: int) -> subprocess.Popen:
    """`mlflow server` on a SQLite store in `tmp_path`, answering on `port`."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    backend = f"sqlite:///{tmp_path / 'server.db'}"
    return start_mlflow_server(backend, tmp_path, port, tmp_path / "server.log", env=env)


def _freeze_mid_trial(server: subprocess.Popen, store: Path, launcher, log: Path) -> dict:
    """Freezes the server (SIGSTOP) as soon as two trials run with an epoch logged each: from
    then on no trial can log or end, so the outage that follows falls mid-trial whatever the
    machine's speed. Returns the two trials' epochs logged when frozen."""

    def frozen_with_two_running():
        # read before the freeze: a frozen server may hold the file's lock; no trial can end
        # its run in the milliseconds between this read and the SIGSTOP
        running = _two_running(store, "outage", 1, OUTAGE_EPOCHS - 1)
        if running:
            for process in session_processes(server.pid):
                process.send_signal(signal.SIGSTOP)
        return running

    frozen = wait_until(
        frozen_with_two_running,
        timeout=540,
        what="two trials running",
        process=launcher,
        every=0.02,
        log=log,
    )
    return {run: epochs for run, (epochs, _) in frozen.items()}


def test_a_tracking_server_down_mid_study_loses_nothing(tmp_path):
    """The server frozen while two trials run, then killed and started again OUTAGE_S later:
    the study goes on and finishes, every epoch logged once; MLflow's "View run" lines stay out
    of the output."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    study, log = _study(tmp_path, "outage", OUTAGE_EPOCHS), tmp_path / "launch.log"
    servers = [_server(tmp_path, port)]
    client = MlflowClient(url)
    launcher = popen_cli(
        "launch",
        str(study),
        "--num-cpus",
        "2",
        "--tracking-uri",
        url,
        "--set",
        "baselines=[]",  # the two trials that run through the outage
        cwd=tmp_path,
        env=ENV,
        start_new_session=True,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        frozen = _freeze_mid_trial(servers[0], tmp_path / "server.db", launcher, log)
        kill_session(servers[0].pid)  # SIGKILL reaches a stopped process
        time.sleep(OUTAGE_S)  # the outage itself: trials train on, their logging retries
        assert launcher.poll() is None
        servers.append(_server(tmp_path, port))
        assert launcher.wait(timeout=600) == 0, log.read_text()
        trials = trial_runs(client, "outage")  # read while the server is up
        assert {r.info.run_id for r in trials} == set(frozen)
        assert all(r.info.status == "FINISHED" for r in trials)
        for run in trials:
            assert logged_epochs(client, run.info.run_id) == list(range(1, OUTAGE_EPOCHS + 1))
    finally:
        for process in (launcher, *servers):
            kill_session(process.pid)
    assert "View run" not in log.read_text()
