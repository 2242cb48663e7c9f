"""Cluster scale on real processes: PostgreSQL, `mlflow server` with basic-auth on it, a Ray head
and a second Ray node with token auth, `slotsweep launch --address`; a node and a launcher
killed with SIGKILL mid-study. Every process and database a test makes, it removes (by session
id and name; never `ray stop`: other Ray clusters may run on this machine)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
import uuid
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import helpers
import pytest
from helpers import (
    CLI_ENV,
    RAY_SLOW_START,
    free_port,
    kill_session,
    logged_epochs,
    session_processes,
    start_mlflow_server,
    trial_runs,
    wait_until,
)
from mlflow.tracking import MlflowClient

from slotsweep.tracking.tags import CHECKPOINT

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ROLE, ROLE_PASSWORD = "slotsweep_ci", "slotsweep_ci"
# Trials long enough that the state a test waits for (a trial checkpointed and still running)
# lasts tens of epochs, not one poll: about 0.25 s an epoch on an idle 2-core machine.
EPOCHS = 40
ENV = {**CLI_ENV, **RAY_SLOW_START}


def run_cli(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """`slotsweep ARGS` in `cwd`, with Ray's start-up limits raised."""
    return helpers.run_cli(*args, cwd=cwd, timeout=timeout, env=ENV)


def popen_cli(*args: str, cwd: Path, **popen: object) -> subprocess.Popen:
    """`slotsweep ARGS` in the background, with Ray's start-up limits raised."""
    return helpers.popen_cli(*args, cwd=cwd, env=ENV, **popen)


def _psql(sql: str) -> str:
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def postgres() -> Iterator[tuple[str, str]]:
    """Two fresh databases (tracking, auth) on Debian's PostgreSQL 15; dropped afterwards."""
    if not shutil.which("pg_ctlcluster") or os.geteuid() != 0:
        pytest.skip("needs Debian's PostgreSQL (pg_ctlcluster) and root")
    subprocess.run(["pg_ctlcluster", "15", "main", "start"], capture_output=True, timeout=120)
    wait_until(
        lambda: subprocess.run(["pg_isready", "-q"]).returncode == 0, timeout=60, what="PostgreSQL"
    )
    _psql(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN "
        f"CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'; END IF; END $$;"
    )
    name = f"slotsweep_{uuid.uuid4().hex[:10]}"
    databases = [name, f"{name}_auth"]
    for database in databases:
        _psql(f"CREATE DATABASE {database} OWNER {ROLE}")
    base = f"postgresql+psycopg://{ROLE}:{ROLE_PASSWORD}@127.0.0.1:5432"
    try:
        yield f"{base}/{databases[0]}", f"{base}/{databases[1]}"
    finally:
        for database in databases:
            _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _http(url: str, user: str, password: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode() if body else None, method="POST" if body else "GET"
    )
    request.add_header(
        "Authorization", "Basic " + b64encode(f"{user}:{password}".encode()).decode()
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"{}")


@pytest.fixture
def mlflow_server(postgres, tmp_path) -> Iterator[tuple[str, str, str]]:
    """`mlflow server --app-name basic-auth` on the databases; yields (url, user, password) of
    a user it creates (not the admin)."""
    tracking, auth = postgres
    admin_password, password = secrets.token_hex(12), secrets.token_hex(12)
    config = tmp_path / "basic_auth.ini"
    config.write_text(
        textwrap.dedent(f"""\
        [mlflow]
        default_permission = READ
        database_uri = {auth}
        admin_username = admin
        authorization_function = mlflow.server.auth:authenticate_request_basic_auth
        """)
    )
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }  # no job runner (its 7 consumers)
    log_path = tmp_path / "mlflow-server.log"
    server = start_mlflow_server(
        tracking, tmp_path, port, log_path, "--app-name", "basic-auth", env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _http(
            f"{url}/api/2.0/mlflow/users/create",
            "admin",
            admin_password,
            {"username": "trainer", "password": password},
        )
        yield url, "trainer", password
    finally:
        kill_session(server.pid)
        server.wait(timeout=30)


def _ray(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "ray"), *args]


@pytest.fixture
def ray_cluster(tmp_path) -> Iterator[dict]:
    """A Ray head and a second node (1 CPU each) with token auth, each `ray start --block` in
    its own session, so that a node's every process can be killed by session id."""
    token = secrets.token_hex(32)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "PYTHONPATH": str(ROOT),
        "RAY_USAGE_STATS_ENABLED": "0",
        **RAY_SLOW_START,
    }
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp = Path(os.environ.get("TMPDIR", "/tmp")) / f"ssray{uuid.uuid4().hex[:6]}"
    nodes = []
    try:
        for args in (
            (
                "--head",
                f"--port={port}",
                "--node-ip-address=127.0.0.1",
                "--include-dashboard=false",
                f"--temp-dir={temp}",
            ),
            (f"--address={address}", "--node-ip-address=127.0.0.1"),
        ):
            log_path = tmp_path / f"ray-node-{len(nodes)}.log"
            log = log_path.open("w")
            nodes.append(
                subprocess.Popen(
                    _ray("start", "--block", "--num-cpus=1", *args),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

            def joined(count: int = len(nodes)) -> bool:
                status = subprocess.run(
                    _ray("status", f"--address={address}"),
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                return status.stdout.count(" node_") >= count

            wait_until(
                joined,
                timeout=300,
                what=f"{len(nodes)} Ray nodes",
                process=nodes[-1],
                every=5,
                log=log_path,
            )
        yield {"address": address, "token": token, "head": nodes[0], "worker": nodes[1]}
    finally:
        for node in reversed(nodes):
            kill_session(node.pid)
            node.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def _study(folder: Path, name: str, seeds: list[int], extra: str = "") -> Path:
    """Slot trials of EPOCHS epochs, two at a time, a checkpoint every epoch; `extra`: more
    lines of the study file."""
    path = folder / "study.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: {name}
        trial: {{arch: lenet_300_100, dataset: synthetic, method: slot, k: 4,
                 train_subset: 1500, epochs: {EPOCHS}}}
        seeds: {seeds}
        max_concurrent: 2
        checkpoint_every: 1
        retries: 2
        """)
        + extra
    )
    return path


def _reference_hash(folder: Path, seed: int) -> str:
    """`slotsweep train` of the same trial, uninterrupted, in this process's environment."""
    out = folder / f"reference-{seed}.json"
    done = run_cli(
        "train",
        "--dataset",
        "synthetic",
        "--method",
        "slot",
        "--k",
        "4",
        "--train-subset",
        "1500",
        "--epochs",
        str(EPOCHS),
        "--seed",
        str(seed),
        "--num-threads",
        "1",
        "--no-mlflow",
        "--json",
        str(out),
        cwd=folder,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text())["selection_sha256"]


def test_a_lost_node_costs_only_the_epochs_since_its_checkpoint(
    tmp_path, mlflow_server, ray_cluster, monkeypatch
):
    url, user, password = mlflow_server
    for key, value in (("MLFLOW_TRACKING_USERNAME", user), ("MLFLOW_TRACKING_PASSWORD", password)):
        monkeypatch.setenv(key, value)
    client = MlflowClient(url)
    study = _study(tmp_path, "cluster", [0, 1])
    env = {
        **ENV,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": ray_cluster["token"],
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": password,
    }
    log = (tmp_path / "launch.log").open("w")
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "slotsweep",
            "launch",
            str(study),
            "--address",
            ray_cluster["address"],
            "--tracking-uri",
            url,
            "--storage",
            str(tmp_path / "storage"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker_sid = ray_cluster["worker"].pid
    try:

        def checkpointed_on_worker():
            worker_pids = {str(p.pid) for p in session_processes(worker_sid)}
            for run in trial_runs(client, "cluster"):
                tags = run.data.tags
                if (
                    run.info.status == "RUNNING"
                    and CHECKPOINT in tags
                    and tags.get("slotsweep.pid") in worker_pids
                ):
                    return run
            return None

        # the trial checkpoints every epoch and runs EPOCHS: the state lasts EPOCHS - 1 epochs
        victim = wait_until(
            checkpointed_on_worker,
            timeout=420,
            what="the second node's trial running with a checkpoint",
            process=launcher,
            log=tmp_path / "launch.log",
        )
        kill_session(worker_sid)  # the second node is lost, mid-trial
        killed_at = len(logged_epochs(client, victim.info.run_id))
        assert killed_at < EPOCHS
        assert launcher.wait(timeout=600) == 0, (tmp_path / "launch.log").read_text()[-4000:]
    finally:
        if launcher.poll() is None:
            kill_session(launcher.pid)
        log.close()
    output = (tmp_path / "launch.log").read_text()
    assert "Ray cluster: 2 nodes" in output
    runs = trial_runs(client, "cluster")
    assert len(runs) == 2 and all(run.info.status == "FINISHED" for run in runs)
    for run in runs:
        assert logged_epochs(client, run.info.run_id) == list(
            range(1, EPOCHS + 1)
        )  # each epoch once
        assert run.data.tags["slotsweep.host"] == socket.gethostname()
    retried = client.get_run(victim.info.run_id)
    resumed_from = int(retried.data.tags["slotsweep.resumed_from_epochs"])
    assert 1 <= resumed_from <= killed_at  # went on from its checkpoint, not from epoch 1
    assert retried.data.tags["slotsweep.node_id"] != victim.data.tags["slotsweep.node_id"]
    seed = int(retried.data.params["seed"])
    assert retried.data.tags["slotsweep.selection_sha256"] == _reference_hash(tmp_path, seed)
    # the password reached the trials (they logged) but no run's params, tags or the output
    for run in runs:
        assert password not in json.dumps([run.data.params, run.data.tags])
    assert password not in output


def test_a_killed_launcher_resumes_its_trials_from_their_checkpoints(tmp_path):
    """The launcher is killed while one trial has finished and another runs with a checkpoint.
    That moment is made to last: the two trials start together, one of 1 epoch and one of
    EPOCHS, so the long one runs checkpointed for EPOCHS - 1 epochs after the short one ends."""
    study = _study(tmp_path, "killed", [0], "baselines: [{epochs: 1}]\n")
    db = tmp_path / "mlflow.db"
    log_path = tmp_path / "launch.log"
    log = log_path.open("w")
    launcher = popen_cli(
        "launch",
        str(study),
        "--num-cpus",
        "2",
        cwd=tmp_path,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = MlflowClient(f"sqlite:///{db}")
    try:

        def one_finished_one_checkpointed():
            # the launch makes its store before any trial starts; a client here on a store
            # being made would run MLflow's migrations alongside it and fail the launch
            if not re.search(r" trial .* started$", log_path.read_text(), re.MULTILINE):
                return None
            with contextlib.suppress(Exception):  # the launcher may be creating the store
                runs = trial_runs(client, "killed")
                finished = [r for r in runs if r.info.status == "FINISHED"]
                saved = [
                    r for r in runs if r.info.status == "RUNNING" and CHECKPOINT in r.data.tags
                ]
                if finished and saved:
                    return finished, saved
            return None

        finished, saved = wait_until(
            one_finished_one_checkpointed,
            timeout=540,
            what="one trial finished while the other runs with a checkpoint",
            process=launcher,
            log=log_path,
        )
        launcher.send_signal(signal.SIGKILL)  # the launcher only, as `kill -9 PID` does
        launcher.wait(timeout=30)
        checkpointed = {r.info.run_id: len(logged_epochs(client, r.info.run_id)) for r in saved}
        done = run_cli("launch", str(study), "--num-cpus", "2", "--resume", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert not session_processes(launcher.pid), "Ray processes of the killed launch are left"
    finally:
        kill_session(launcher.pid)
        log.close()
    runs = trial_runs(client, "killed")
    assert len(runs) == 2 and all(run.info.status == "FINISHED" for run in runs)
    by_id = {run.info.run_id: run for run in runs}
    for before in finished:  # not trained again
        after = by_id[before.info.run_id]
        assert after.info.end_time == before.info.end_time
        assert "slotsweep.resumed_from_epochs" not in after.data.tags
    assert {int(by_id[r.info.run_id].data.params["epochs"]) for r in saved} == {EPOCHS}
    for run_id, logged in checkpointed.items():
        assert logged_epochs(client, run_id) == list(range(1, EPOCHS + 1))  # no epoch twice, no gap
        resumed_from = int(by_id[run_id].data.tags["slotsweep.resumed_from_epochs"])
        assert 1 <= resumed_from <= logged


def test_two_half_gpu_trials_share_a_logical_gpu_and_fail_clearly_without_cuda(tmp_path):
    """Logical GPUs on a CPU machine (`--num-gpus 2`): two `gpu: 0.5` trials are packed onto one
    GPU at once, and a trial given a GPU without CUDA fails in one line, not on the CPU."""
    study = tmp_path / "study.yaml"
    study.write_text(
        textwrap.dedent("""\
        name: gpus
        trial: {arch: lenet_300_100, dataset: synthetic, method: slot, k: 4, train_subset: 256,
                epochs: 1}
        seeds: [0, 1]
        resources: {cpu: 1, gpu: 0.5}
        max_concurrent: 2
        """)
    )
    done = run_cli("launch", str(study), "--num-cpus", "2", "--num-gpus", "2", cwd=tmp_path)
    assert done.returncode == 1 and "every trial failed" in done.stderr, done.stdout + done.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = trial_runs(client, "gpus")
    assert len(runs) == 2 and all(run.info.status == "FAILED" for run in runs)
    assert {run.data.tags["slotsweep.gpu_ids"] for run in runs} in ({"0"}, {"1"})
    for run in runs:
        assert "CUDA is not available" in run.data.tags["slotsweep.error"]
        assert "slotsweep.gpu_names" not in run.data.tags
    lines = [line for line in done.stdout.splitlines() if "failed: TrialFailed" in line]
    assert len(lines) == 2 and all("CUDA is not available" in line for line in lines)
    assert "Traceback" not in done.stdout + done.stderr
