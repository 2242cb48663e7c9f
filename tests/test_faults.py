"""Faults a launch meets at cluster scale, on real files and processes: damaged checkpoints
(checked, with the fallback named), a second launch of a study (refused or waiting, a dead
holder's lock taken over), two processes creating one SQLite store at once, and a study changed
between a launch and its `--resume`. (End to end with real signals: `test_stop.py`.)"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from slotsweep.launch.lock import StudyLocked, lock_path, study_lock
from slotsweep.study.file import load_study
from slotsweep.study.identity import plan_changes, study_plan
from slotsweep.train.checkpoint import DIGEST_FILE, STATE_FILE, DamagedCheckpoint, TrainingState
from slotsweep.train.trainer import train_trial

ROOT = Path(__file__).resolve().parents[1]
QUICK = {"dataset": "synthetic", "epochs": 3, "train_subset": 128, "batch_size": 64}


def _states(tmp_path: Path) -> list[TrainingState]:
    """The states of a short real trial after epochs 1 and 2."""
    from slotsweep.config import TrialConfig

    states: list[TrainingState] = []
    config = TrialConfig(method="slot", k=4, num_threads=1, **QUICK)
    train_trial(config, on_checkpoint=states.append, checkpoint_every=1)
    assert [s.epochs_done for s in states] == [1, 2]
    return states


def _tune_folders(tmp_path: Path, states: list[TrainingState]) -> list[Path]:
    """The states saved as Tune keeps a trial's checkpoints: checkpoint_00000N in one folder."""
    folders = []
    for number, state in enumerate(states):
        folder = tmp_path / "trial" / f"checkpoint_{number:06d}"
        state.save(folder)
        folders.append(folder)
    return folders


def _truncate(folder: Path) -> None:
    path = folder / STATE_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(folder: Path) -> None:
    """Flips bytes in the middle of the tensors' data: the zip stays readable, the values not."""
    path = folder / STATE_FILE
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0x5A for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _garble])
def test_a_damaged_checkpoint_is_refused_naming_its_file(tmp_path, damage):
    state = _states(tmp_path)[0]
    state.save(tmp_path)
    assert TrainingState.load(tmp_path).epochs_done == 1
    damage(tmp_path)
    with pytest.raises(DamagedCheckpoint, match="does not match its digest") as caught:
        TrainingState.load(tmp_path)
    assert caught.value.path == tmp_path / STATE_FILE
    (tmp_path / DIGEST_FILE).unlink()
    with pytest.raises(DamagedCheckpoint, match="cannot be read"):
        TrainingState.load(tmp_path)


@pytest.mark.parametrize("damage", [_truncate, _garble])
def test_a_restore_falls_back_to_the_previous_checkpoint_then_to_epoch_0(tmp_path, damage):
    from ray import tune

    from slotsweep.launch.restore import restore

    folders = _tune_folders(tmp_path, _states(tmp_path))
    good = restore(tune.Checkpoint(str(folders[-1])))
    assert good.state.epochs_done == 2 and good.notice is None
    damage(folders[-1])
    fell_back = restore(tune.Checkpoint(str(folders[-1])))
    assert fell_back.state.epochs_done == 1
    assert str(folders[-1] / STATE_FILE) in fell_back.notice
    assert "went on from epoch 1" in fell_back.notice
    damage(folders[0])
    none_good = restore(tune.Checkpoint(str(folders[-1])))
    assert none_good.state is None
    assert str(folders[0] / STATE_FILE) in none_good.notice
    assert "from epoch 0" in none_good.notice


def test_a_stop_request_saves_at_the_next_epoch_whatever_the_interval():
    from slotsweep.train import checkpoint

    assert not checkpoint.is_due(1, 0, 5) and not checkpoint.is_due(1, 3, 5)
    checkpoint.set_stop_probe(lambda: True)
    try:
        assert checkpoint.is_due(1, 0, 5) and checkpoint.is_due(1, 3, 5)
        assert not checkpoint.is_due(5, 1, 5)  # the last epoch finishes the trial instead
    finally:
        checkpoint.set_stop_probe(None)


# --- one launch of a study at a time ---

HOLD = """
import sys, time
from slotsweep.launch.lock import study_lock
with study_lock(sys.argv[1], "s", say=print):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(uri: str, cwd: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, uri], cwd=cwd, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_launch_is_refused_naming_the_first_and_a_dead_holders_lock_is_taken(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = _holder(uri, tmp_path)
    try:
        with pytest.raises(StudyLocked) as refused:
            with study_lock(uri, "s"):
                pass
        assert f"pid {first.pid}" in str(refused.value) and "host " in str(refused.value)
        assert "since 20" in str(refused.value)
        with study_lock(uri, "other"):  # another study on the store is not held up
            pass
    finally:
        first.send_signal(signal.SIGKILL)  # dies holding it, as a crashed launcher does
        first.wait()
    said: list[str] = []
    with study_lock(uri, "s", say=said.append) as path:
        assert path == lock_path(uri, "s")
    assert len(said) == 1 and f"pid {first.pid}" in said[0] and "died holding it" in said[0]


def test_a_waiting_launch_goes_on_once_the_first_ends(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = _holder(uri, tmp_path)
    said: list[str] = []
    try:
        ended = subprocess.Popen(["sh", "-c", f"sleep 3; kill {first.pid}"])
        started = time.monotonic()
        with study_lock(uri, "s", wait=True, say=said.append):
            assert first.poll() is not None  # held only once the first had ended
        assert time.monotonic() - started >= 2.5
        ended.wait()
    finally:
        first.kill()
        first.wait()
    assert len(said) == 1 and said[0].startswith("waiting for the running launch of study s")


CREATE = """
import sys, time
from pathlib import Path
from mlflow.tracking import MlflowClient
from slotsweep.tracking.store import prepare_store
go = Path(sys.argv[2])
print("ready", flush=True)  # imports done: the test lets both go only now
while not go.exists():
    time.sleep(0.01)
prepare_store(sys.argv[1])
MlflowClient(sys.argv[1]).create_experiment(sys.argv[3])
"""


@pytest.mark.slow  # two processes importing MLflow: about 20 s on a busy machine
def test_processes_creating_one_fresh_store_at_once_all_succeed(tmp_path):
    """Two processes, both past their imports, wait for one file, then create the same fresh
    SQLite store together (without the store's lock, one fails: `table ... already exists`,
    `duplicate column`)."""
    uri, go = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, uri, str(go), f"e{n}"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    # a fixed pause would let one process, still importing MLflow, start after the other ended
    assert [p.stdout.readline().strip() for p in processes] == ["ready"] * 2
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * 2, "\n".join(errors)
    from mlflow.tracking import MlflowClient

    names = {e.name for e in MlflowClient(uri).search_experiments()}
    assert {"e0", "e1"} <= names


# --- a study's identity on resume ---


def _study(tmp_path: Path, *overrides: str):
    path = tmp_path / "s.yaml"
    path.write_text((ROOT / "studies" / "smoke.yaml").read_text())
    return load_study(path, overrides)


def test_a_changed_study_names_each_changed_key_and_additions_pass(tmp_path):
    before = study_plan(_study(tmp_path, "trial.epochs=8"))
    ran = set(before["trials"])
    changed = study_plan(_study(tmp_path, "trial.epochs=10", "trial.lr=0.2"))
    assert plan_changes(before, changed, ran, False) == [
        "trial.epochs: 8 -> 10",
        "trial.lr: None -> 0.2",
    ]
    wider = study_plan(_study(tmp_path, "trial.epochs=8", "seeds=[0,1]", "space.k.grid=[1,8,16]"))
    assert plan_changes(before, wider, ran, False) == []
    assert plan_changes(wider, before, set(wider["trials"]), False) == [
        "seeds: [0, 1] -> [0]",
        "space.k.grid: [1, 8, 16] -> [1, 8]",
    ]
    # only what ran counts: a trial never run may change
    assert plan_changes(before, changed, set(), False) == []
    assert before["digest"] != changed["digest"]
    assert before["digest"] == study_plan(_study(tmp_path, "trial.epochs=8"))["digest"]


def test_a_changed_search_alters_its_trials_and_more_samples_do_not(tmp_path):
    body = textwrap.dedent(
        """
        name: s
        trial: {arch: lenet_300_100, dataset: synthetic, method: slot, epochs: 1}
        space: {k: {choice: [1, 2, 4]}}
        search: {algorithm: optuna, num_samples: 4}
        """
    )
    (tmp_path / "o.yaml").write_text(body)
    before = study_plan(load_study(tmp_path / "o.yaml", ()))
    more = study_plan(load_study(tmp_path / "o.yaml", ["search.num_samples=8"]))
    assert plan_changes(before, more, set(), True) == []
    other = study_plan(load_study(tmp_path / "o.yaml", ["search.sampler=random"]))
    assert plan_changes(before, other, set(), True) == ["search.sampler: tpe -> random"]


@pytest.mark.slow  # an MLflow SQLite store made: 6 s idle, 18 s on a busy machine
def test_allowed_changes_tag_the_earlier_plans_runs_and_refused_ones_name_the_key(tmp_path):
    """The parent of a launch of epochs 1 (its plan recorded, one run per trial, as a launch
    makes them); then the study with epochs 2 on --resume: refused naming the key, or allowed
    (the earlier runs tagged superseded, saying what changed)."""
    from mlflow.tracking import MlflowClient

    from slotsweep.config import trial_key
    from slotsweep.tracking.identity import record_plan, resume_changes
    from slotsweep.tracking.store import experiment_id, prepare_store
    from slotsweep.tracking.tags import PHASE, ROLE, STUDY, SUPERSEDED, TRIAL_KEY

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare_store(uri)
    client, before = MlflowClient(uri), _study(tmp_path, "trial.epochs=1")
    exp = experiment_id(client, before.experiment_name)
    parent = client.create_run(exp, tags={ROLE: "study", STUDY: before.name}).info.run_id
    record_plan(client, parent, study_plan(before))
    for group in before.groups:
        key = trial_key(group.config(before.seeds[0]).resolved())
        tags = {ROLE: "trial", TRIAL_KEY: key, PHASE: "fixed", "mlflow.parentRunId": parent}
        client.set_terminated(client.create_run(exp, tags=tags).info.run_id)
    after = _study(tmp_path, "trial.epochs=2")
    assert resume_changes(uri, _study(tmp_path, "trial.epochs=1", "seeds=[0,1]"), False) == []
    assert resume_changes(uri, after, False) == ["trial.epochs: 1 -> 2"]
    assert client.get_run(parent).data.tags["slotsweep.plan_sha256"] == study_plan(before)["digest"]
    assert resume_changes(uri, after, True) == []
    trials = client.search_runs([exp], f"tags.`{ROLE}` = 'trial'")
    assert len(trials) == 3
    assert all("trial.epochs: 1 -> 2" in run.data.tags[SUPERSEDED] for run in trials)


def test_the_summary_counts_stopped_trials_apart_from_failed_ones():
    """A KILLED run (a stopped launch, a SIGKILLed launcher) is counted as stopped, not failed:
    `--resume` goes on with it; only a FAILED run failed."""
    from slotsweep.analysis import compare
    from slotsweep.tracking.summary import summary_values
    from slotsweep.train.result import TrialRecord

    params = {"method": "dense", "arch": "lenet_300_100", "dataset": "synthetic", "seed": "0"}
    statuses = ["FINISHED", "FINISHED", "FAILED", "KILLED", "KILLED", "KILLED"]
    records = [
        TrialRecord(f"r{i}", status, {**params, "seed": str(i)}, {"test_accuracy": 0.5}, None)
        for i, status in enumerate(statuses)
    ]
    _, metrics = summary_values(records, compare(records), [("test_accuracy", "max")])
    counted = (metrics["trials_finished"], metrics["trials_failed"], metrics["trials_stopped"])
    assert counted == (2, 1, 3)


def test_a_lock_taken_this_instant_is_refused_naming_its_holder_once_written(tmp_path):
    """The holder takes the lock, then writes its name: a launch refused in between waits for
    the name rather than saying "pid ?" (two launches started together on a fresh store)."""
    import fcntl
    import json
    import threading

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = lock_path(uri, "s")
    path.parent.mkdir(parents=True)
    with path.open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken, its name not written yet
        record = {"host": "node7", "pid": 4242, "since": 1.8e9}
        writer = threading.Timer(0.3, lambda: (held.write(json.dumps(record)), held.flush()))
        writer.start()
        try:
            with pytest.raises(StudyLocked) as refused:
                with study_lock(uri, "s"):
                    pass
        finally:
            writer.join()
    assert "host node7, pid 4242, since 20" in str(refused.value)
