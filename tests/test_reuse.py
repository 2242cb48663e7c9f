"""Trials sharing their Ray actor (one process runs many trials), and a launch followed from a log
file: plain lines per trial event, status lines, no control characters."""

import io
import json
import re
import signal
import textwrap

import pytest
from helpers import CLI_ENV, popen_cli, run_cli, trial_runs, wait_until
from mlflow.tracking import MlflowClient
from rich.console import Console

from slotsweep.launch.logview import progress_view
from slotsweep.launch.progress import StudyProgress

TRIAL = "arch: lenet_300_100, dataset: synthetic, method: slot, epochs: 1, train_subset: 256"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but tab and newline


def _trial_runs(folder, experiment):
    return trial_runs(MlflowClient(f"sqlite:///{folder / 'mlflow.db'}"), experiment)


def _fresh_hash(folder, k: int, seed: int) -> str:
    """The trial's selection trained alone by `slotsweep train` in a new process."""
    out = folder / f"fresh-{k}-{seed}.json"
    done = run_cli(
        "train",
        *("--dataset", "synthetic", "--k", str(k), "--epochs", "1", "--train-subset", "256"),
        *("--seed", str(seed), "--num-threads", "1", "--no-mlflow", "--json", str(out)),
        cwd=folder,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text())["selection_sha256"]


@pytest.mark.slow
def test_one_process_runs_trials_after_a_failure_as_fresh_processes_do(tmp_path):
    """Three trials, one slot: a slot trial, a trial that fails (NaN loss), a slot trial. All
    three run in one process; each slot trial's selection is the one a fresh process trains. The
    output is a file: one line per trial start and end, the failure with its reason, status lines,
    no control characters."""
    study = tmp_path / "study.yaml"
    study.write_text(
        textwrap.dedent(f"""\
        name: reused
        trial: {{{TRIAL}, k: 4}}
        seeds: [3]
        baselines:
          - {{method: dense, lr: 1.0e+30}}
          - {{k: 8}}
        max_concurrent: 1
        """)
    )
    env = {**CLI_ENV, "SLOTSWEEP_STATUS_INTERVAL_S": "1"}
    done = run_cli("launch", str(study), "--num-cpus", "1", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = {
        (r.data.params["method"], r.data.params.get("k")): r
        for r in _trial_runs(tmp_path, "reused")
    }
    assert len(runs) == 3
    assert len({r.data.tags["slotsweep.pid"] for r in runs.values()}) == 1  # one process
    assert [r.info.status for key, r in runs.items() if key[0] == "dense"] == ["FAILED"]
    for k in (4, 8):
        run = runs[("slot", str(k))]
        assert run.info.status == "FINISHED"
        assert run.data.tags["slotsweep.selection_sha256"] == _fresh_hash(tmp_path, k, 3)
    lines = done.stdout.splitlines()
    assert not CONTROL.search(done.stdout)
    assert sum(" started" in line for line in lines) == 3
    assert sum(" finished: best_val_accuracy " in line for line in lines) == 2
    failures = [line for line in lines if re.search(r"trial .* failed: \S", line)]
    assert len(failures) == 1 and "TrialFailed: training loss became nan" in failures[0]
    status = [line for line in lines if re.match(r"\d\d:\d\d:\d\d status: ", line)]
    assert len(status) >= 2  # every second while trials run (their processes take longer)
    assert " status: done 2  running 0  failed 1  best " in status[-1]


def _finished(folder, experiment) -> dict[str, tuple[str, int]]:
    """trial key -> (run id, end time) of the FINISHED trial runs so far."""
    if not (folder / "mlflow.db").exists():
        return {}
    try:
        runs = _trial_runs(folder, experiment)
    except Exception:  # noqa: BLE001 - the store is being created
        return {}
    return {
        r.data.tags["slotsweep.trial_key"]: (r.info.run_id, r.info.end_time)
        for r in runs
        if r.info.status == "FINISHED"
    }


@pytest.mark.slow
def test_a_killed_launch_of_reused_processes_resumes_losing_and_repeating_nothing(tmp_path):
    """SIGKILL to the launcher once two of eight trials finished; `--resume` runs exactly the
    others: the finished runs stay as they were, every trial ends with one FINISHED run."""
    study = tmp_path / "study.yaml"
    study.write_text(
        f"name: killed\ntrial: {{{TRIAL}}}\nspace: {{k: {{grid: [2, 4, 8, 16]}}}}\n"
        "seeds: [0, 1]\nmax_concurrent: 2\n"
    )
    log = tmp_path / "first.log"
    with open(log, "w") as output:
        launch = popen_cli(
            "launch", str(study), "--num-cpus", "2", cwd=tmp_path, stdout=output, stderr=output
        )
        try:
            wait_until(
                lambda: log.read_text().count(" finished: ") >= 2,
                timeout=300,
                what="two finished trials in the log",
                process=launch,
                every=0.1,
                log=log,
            )
            launch.send_signal(signal.SIGKILL)
            launch.wait(timeout=60)
        finally:
            if launch.poll() is None:
                launch.kill()
    before = _finished(tmp_path, "killed")
    assert 2 <= len(before) < 8, log.read_text()
    done = run_cli("launch", str(study), "--num-cpus", "2", "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not CONTROL.search(done.stdout + done.stderr)  # no progress bars (carriage returns)
    after = _finished(tmp_path, "killed")
    assert len(after) == 8
    assert all(after[key] == before[key] for key in before)  # not run again, not rewritten
    # The killed launcher's Ray workers may still end a trial they were training before the
    # resume ends them (a few seconds into it): that trial is finished too, and is not run again.
    runs = _trial_runs(tmp_path, "killed")
    params = {r.data.tags["slotsweep.trial_key"]: r.data.params for r in runs}
    names = {key: f"slot k={p['k']} seed {p['seed']}" for key, p in params.items()}
    started = [
        line.split(" trial ", 1)[1].removesuffix(" started")
        for line in done.stdout.splitlines()
        if line.endswith(" started")
    ]
    assert len(set(started)) == len(started) <= 8 - len(before), done.stdout
    assert not {names[key] for key in before} & set(started), done.stdout
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 8  # the killed ones replaced


def test_plain_lines_per_trial_event_and_a_status_line_each_interval(monkeypatch):
    """Not a terminal: each event is one stamped line (a failure always with a reason), a status
    line comes every interval, and nothing but printable text is written."""
    monkeypatch.setenv("SLOTSWEEP_STATUS_INTERVAL_S", "0.05")
    buffer = io.StringIO()
    console = Console(file=buffer, width=40)  # narrower than the lines: they must not wrap
    progress = StudyProgress(total=3)
    with progress_view(progress, console):
        progress.trial_started("a", "slot k=8 seed 0 with a long name past the console width")
        progress.trial_result("a", {"best_val_accuracy": 0.875, "training_iteration": 1})
        progress.trial_finished("a")
        progress.trial_started("b", "dense seed 0")
        progress.trial_failed("b", "")  # Tune gave no reason
        progress.trial_started("c", "slot k=2 seed 0")
        progress.trial_failed("c", "TrialFailed: loss\nbecame nan")
        wait_until(
            lambda: buffer.getvalue().count("status:") >= 2,
            timeout=10,
            what="two status lines",
            every=0.01,
        )
    lines = [line.split(" ", 1)[1] for line in buffer.getvalue().splitlines()]
    events = [line for line in lines if not line.startswith("status: ")]
    assert events[0] == "trial slot k=8 seed 0 with a long name past the console width started"
    assert re.fullmatch(
        r"trial slot k=8 seed 0 .* finished: best_val_accuracy 0\.8750 in \d+\.\d s", events[1]
    )
    assert events[3].startswith("trial dense seed 0 failed: failed (the trial's error.txt")
    assert events[5].startswith("trial slot k=2 seed 0 failed: TrialFailed: loss / became nan")
    assert len(events) == 6
    assert lines[-1].startswith("status: done 1  running 0  failed 2  best best_val_accuracy")
    assert not CONTROL.search(buffer.getvalue())
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in buffer.getvalue().splitlines())
