"""Pre-flight: every kind of bad input or dead service is refused with exit 2 and one line naming
it, within the time limit, before anything (store, Ray session, results folder) is created."""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CLI_ENV
from writers import write_unreadable_idx_folder

LIMIT_S = 3  # SLOTSWEEP_CONNECT_TIMEOUT in these tests; the default is 30
WITHIN_S = 60  # "returned within the limit": start-up of a loaded 2-core machine included
NO_CUDA = pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA is here")
OK = "name: ok\ntrial: {dataset: synthetic, epochs: 1, train_subset: 256}\n"


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, float]:
    """`slotsweep ARGS` in a new process, short limits, Ray's temp folder beside `cwd`."""
    env = {
        **CLI_ENV,
        "SLOTSWEEP_CONNECT_TIMEOUT": str(LIMIT_S),
        "RAY_TMPDIR": str(cwd.parent / "raytmp"),
        **(env or {}),
    }
    env = {key: value for key, value in env.items() if value and key != "SLOTSWEEP_DATA"}
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "slotsweep", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out, time.monotonic() - started


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current folder (Ray's temp folder beside it), short limits, no data variable."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("SLOTSWEEP_CONNECT_TIMEOUT", str(LIMIT_S))
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "raytmp"))
    monkeypatch.delenv("SLOTSWEEP_DATA", raising=False)
    return folder


def _flat(text: str) -> str:
    return " ".join(text.split())  # Rich wraps long lines at spaces


def refused(
    *args: str,
    cwd: Path,
    says: tuple[str, ...],
    new_process: bool = False,
    env: dict[str, str] | None = None,
    within: float = WITHIN_S,
) -> str:
    """Runs the command (in this process through the CLI's own app, or in a new one); asserts
    exit 2, the words in its message, no traceback, nothing created (no store, no results, no
    Ray session) and a return within the limit."""
    before = sorted(p.name for p in cwd.iterdir())
    started = time.monotonic()
    if new_process:
        out, _ = cli(*args, cwd=cwd, env=env)
        code, text = out.returncode, out.stdout + out.stderr
    else:
        from typer.testing import CliRunner

        from slotsweep.cli import app

        result = CliRunner().invoke(app, list(args))
        code, text = result.exit_code, result.output
        assert isinstance(result.exception, SystemExit | None), repr(result.exception)
        assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    seconds = time.monotonic() - started
    assert code == 2, text
    for word in says:
        assert _flat(word) in _flat(text), f"{word!r} not in: {text}"
    assert "Traceback" not in text, text
    assert sorted(p.name for p in cwd.iterdir()) == before, "something was created"
    assert not (cwd.parent / "raytmp").exists(), "a Ray session was started"
    assert seconds < within, f"took {seconds:.0f} s"
    return text


def study(cwd: Path, text: str, name: str = "s.yaml") -> str:
    (cwd / name).write_text(text)
    return name


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers: a hung service."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


# --- static: validate and launch alike ---


@pytest.mark.parametrize("command", ["validate", "launch"])
@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("trial.lr=.inf", "trial.lr"),
        ("trial.score_lambda=.nan", "trial.score_lambda"),
        ("trial.lr=inf", "trial.lr"),
        ("space.lr={uniform: [0.1, .inf]}", "space.lr.uniform"),
        ("resources.cpu=.inf", "resources.cpu"),
        ("space.k={grid: [1, .inf]}", "space.k.grid[1]"),
    ],
)
def test_non_finite_numbers_are_refused(work: Path, command: str, setting: str, key: str) -> None:
    extra = ["--set", "search.algorithm=random"] if "uniform" in setting else []
    refused(command, study(work, OK), "--set", setting, *extra, cwd=work, says=(key, "finite"))


def test_train_refuses_a_non_finite_flag(work: Path) -> None:
    refused("train", "--lr", "inf", "--no-mlflow", cwd=work, says=("--lr", "finite"))


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (["search.metric=test_accuracy"], ("search.metric", "test_accuracy", "val_accuracy")),
        (["search.metric=val_acc"], ("search.metric", "val_acc")),
        (
            ["scheduler.name=asha", "search.metric=selection_change_fraction"],
            ("search.metric", "selection_change_fraction", "scheduler"),
        ),
    ],
)
def test_a_metric_no_trial_reports_is_refused(
    work: Path, settings: list[str], says: tuple[str, ...]
) -> None:
    args = [arg for setting in settings for arg in ("--set", setting)]
    refused("launch", study(work, OK), *args, cwd=work, says=says)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "trial: {dataset: synthetic, selection: probabilistic, impl: fused}",
            ("trial.impl", "greedy"),
        ),
        (
            "trial: {dataset: synthetic}\nbaselines: [{method: dense, k: 4}]",
            ("baselines[0].k", "slot only"),
        ),
        ("trial: {dataset: synthetic, method: dense, impl: reference}", ("trial.impl",)),
        ("trial: {dataset: synthetic, keep_fraction: 0.3}", ("trial.keep_fraction", "edge_popup")),
        (
            "trial: {dataset: synthetic, schedule: cosine, restart_period: 5}",
            ("trial.restart_period",),
        ),
        ("trial: {dataset: synthetic, dropout: 0.2}", ("trial.dropout", "lenet_300_100")),
        (
            "trial: {dataset: synthetic}\nscheduler: {name: fifo, grace_period: 2}",
            ("scheduler.grace_period", "asha"),
        ),
        (
            "trial: {dataset: synthetic, method: dense}\nspace: {k: {grid: [1, 2]}}",
            ("space.k", "slot only"),
        ),
    ],
)
def test_a_setting_that_would_be_ignored_is_refused(
    work: Path, text: str, says: tuple[str, ...]
) -> None:
    refused("validate", study(work, f"name: s\n{text}\n"), cwd=work, says=says)


def test_a_setting_that_takes_effect_in_some_trials_is_accepted(work: Path) -> None:
    """trial.k reaches the slot trials; the dense baseline inheriting it is no fault."""
    name = study(
        work,
        "name: s\ntrial: {dataset: synthetic, k: 4, train_subset: 256}\n"
        "baselines: [{method: dense}]\n",
    )
    out, _ = cli("validate", name, cwd=work)
    assert out.returncode == 0, out.stderr


def test_check_env_passes_for_a_runnable_study_and_creates_nothing(work: Path) -> None:
    from typer.testing import CliRunner

    from slotsweep.cli import app

    result = CliRunner().invoke(app, ["validate", study(work, OK), "--check-env"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in work.iterdir()) == ["s.yaml"]


@pytest.mark.parametrize("name", ["smoke.yaml", "k_scan.yaml"])
def test_the_shipped_studies_pass(work: Path, name: str) -> None:
    out, _ = cli("validate", str(Path(__file__).parents[1] / "studies" / name), cwd=work)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (["trial.train_subset=1"], ("trial.train_subset", "empty split")),
        (["trial.train_subset=100"], ("trial.batch_size", "85 training examples")),
        (["trial.train_subset=5000"], ("trial.train_subset", "2000")),
    ],
)
def test_a_split_too_small_for_one_batch_is_refused(
    work: Path, settings: list[str], says: tuple[str, ...]
) -> None:
    args = [arg for setting in settings for arg in ("--set", setting)]
    refused("launch", study(work, OK), *args, cwd=work, says=says)


def test_train_refuses_a_split_too_small(work: Path) -> None:
    refused(
        "train",
        "--dataset",
        "synthetic",
        "--train-subset",
        "2",
        "--no-mlflow",
        cwd=work,
        says=("--train-subset", "empty split"),
    )


def test_a_study_file_that_is_not_utf8_is_refused(work: Path) -> None:
    (work / "latin.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    refused(
        "launch", "latin.yaml", cwd=work, says=("latin.yaml", "not UTF-8", "0xe9"), new_process=True
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["train", "--dataset", "synthetic", "--no-mlflow", "--json", "missing/r.json"],
            ("--json", "missing"),
        ),
        (["train", "--dataset", "synthetic", "--no-mlflow", "--json", "."], ("--json", "folder")),
    ],
)
def test_an_output_path_that_cannot_be_written_is_refused(
    work: Path, args: list[str], says: tuple[str, ...]
) -> None:
    refused(*args, cwd=work, says=says)


def test_report_refuses_an_out_below_a_file_and_creates_no_store(work: Path) -> None:
    (work / "file").write_text("")
    refused(
        "report",
        "--experiment",
        "x",
        "--out",
        "file/report",
        cwd=work,
        says=("--out", "tracking store", "no such file"),
    )


# --- the environment: launch, validate --check-env, train ---


@NO_CUDA
@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (["trial.device=cdua"], ("trial.device", "'cdua' is not a device")),
        (["trial.device=cuda"], ("trial.device", "resources.gpu")),
        (["trial.device=cuda", "resources.gpu=1"], ("resources", "1 GPU needed")),
        (["resources.cpu=64"], ("resources", "64 CPU needed", "2 CPU")),
    ],
)
def test_a_device_or_resources_no_node_has_are_refused(
    work: Path, settings: list[str], says: tuple[str, ...]
) -> None:
    args = [arg for setting in settings for arg in ("--set", setting)]
    refused("launch", study(work, OK), *args, "--num-cpus", "2", cwd=work, says=says)


@NO_CUDA
def test_train_refuses_cuda_where_there_is_none(work: Path) -> None:
    refused(
        "train",
        "--dataset",
        "synthetic",
        "--device",
        "cuda",
        "--no-mlflow",
        cwd=work,
        says=("--device", "CUDA is not available"),
    )


@pytest.mark.parametrize("command", [["launch"], ["validate", "--check-env"]])
def test_data_that_is_not_there_is_refused(work: Path, tmp_path: Path, command: list[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    name = study(work, f"name: s\ntrial: {{dataset: mnist, data_root: {empty}}}\n")
    refused(*command, name, cwd=work, says=("trial.dataset", "'mnist' not found", str(empty)))


def test_train_refuses_data_that_is_not_there(work: Path, tmp_path: Path) -> None:
    refused(
        "train",
        "--dataset",
        "mnist",
        "--data-root",
        str(tmp_path),
        "--no-mlflow",
        cwd=work,
        says=("--dataset", "not found"),
    )


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        (
            "postgresql+pg8000://user:pw@127.0.0.1:5432/mlflow",
            ("tracking store", "driver", "pg8000"),
        ),
        ("gopher://somewhere", ("tracking store", "unsupported scheme 'gopher'")),
        ("sqlite:///missing/folder/mlflow.db", ("tracking store", "does not exist")),
    ],
)
def test_a_tracking_store_that_cannot_work_is_refused(
    work: Path, uri: str, says: tuple[str, ...]
) -> None:
    if uri.startswith("postgresql"):
        with contextlib.suppress(ImportError):
            __import__("pg8000")
            pytest.skip("pg8000 is installed here")
    refused("launch", study(work, OK), "--tracking-uri", uri, cwd=work, says=says)


def test_a_tracking_server_that_is_down_is_refused(work: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    refused(
        "launch",
        study(work, OK),
        "--tracking-uri",
        uri,
        cwd=work,
        says=(uri, "refused", "MLflow server"),
    )


def test_a_tracking_server_that_hangs_is_refused_within_the_limit(work: Path) -> None:
    with silent_server() as port:
        refused(
            "train",
            "--dataset",
            "synthetic",
            "--tracking-uri",
            f"http://127.0.0.1:{port}",
            cwd=work,
            says=(f"127.0.0.1:{port}", f"no answer within {LIMIT_S} s"),
            new_process=True,
        )


def test_a_ray_address_that_is_closed_is_refused(work: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    refused(
        "launch",
        study(work, OK),
        "--address",
        address,
        cwd=work,
        says=(f"Ray cluster at {address}", "refused"),
        new_process=True,
    )


def test_a_ray_address_that_hangs_is_refused_within_the_limit(work: Path) -> None:
    with silent_server() as port:
        refused(
            "validate",
            study(work, OK),
            "--check-env",
            "--address",
            f"127.0.0.1:{port}",
            cwd=work,
            says=(f"127.0.0.1:{port}", f"no answer within {LIMIT_S} s"),
            new_process=True,
        )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--address", "headnode"], ("--address headnode", "HOST:PORT")),
        (["--address", "127.0.0.1:1", "--num-cpus", "2"], ("--num-cpus", "local Ray")),
    ],
)
def test_launch_options_that_cannot_work_are_refused(
    work: Path, args: list[str], says: tuple[str, ...]
) -> None:
    refused("launch", study(work, OK), *args, cwd=work, says=says)


@contextlib.contextmanager
def ray_cluster() -> Iterator[str]:
    """A one-node Ray cluster of 1 CPU (started by a driver of its own); yields its address."""
    code = (
        "import ray, time; ray.init(num_cpus=1, include_dashboard=False); "
        "print(ray.get_runtime_context().gcs_address, flush=True); time.sleep(900)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env=CLI_ENV,
        start_new_session=True,
    )
    try:
        # its address once Ray is up; a driver that exited ends the wait at once (end of file)
        started, _, _ = select.select([process.stdout], [], [], 300)
        address = process.stdout.readline().strip() if started else ""
        assert address, f"the Ray driver gave no address (exit code {process.poll()})"
        yield address
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


@pytest.mark.slow
def test_a_cluster_is_checked_for_placement_and_for_data_on_its_node(
    work: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    name = study(work, OK)
    # a real connection on a loaded machine; Ray's temp folder (and its token) the cluster's
    slow = {"SLOTSWEEP_CONNECT_TIMEOUT": "60", "RAY_TMPDIR": "", "RAY_AUTH_MODE": "token"}
    with ray_cluster() as address:
        refused(
            "validate",
            name,
            "--check-env",
            "--address",
            address,
            "--set",
            "resources.cpu=2",
            cwd=work,
            says=("resources", "2 CPU needed", "1 CPU"),
            new_process=True,
            env=slow,
            within=90,
        )
        refused(
            "validate",
            name,
            "--check-env",
            "--address",
            address,
            "--set",
            "trial.dataset=mnist",
            "--set",
            f"trial.data_root={empty}",
            cwd=work,
            says=("trial.dataset: data set 'mnist' not found on ", str(empty)),
            new_process=True,
            env=slow,
            within=90,
        )
        out, _ = cli("validate", name, "--check-env", "--address", address, cwd=work, env=slow)
        assert out.returncode == 0, out.stdout + out.stderr


# --- failures inside trials ---


@pytest.mark.slow
def test_every_trial_failing_gives_one_line_each_and_exit_1(tmp_path: Path) -> None:
    """A NaN loss and data that cannot be read: each failed trial is one line with its reason
    (live view and closing table), its traceback only in its error.txt."""
    from mlflow.tracking import MlflowClient

    corrupt = write_unreadable_idx_folder(tmp_path / "corrupt")
    name = study(
        tmp_path,
        "name: allfail\n"
        "trial: {dataset: synthetic, epochs: 1, train_subset: 256, batch_size: 64, "
        "method: dense, lr: 1.0e+30}\n"
        f"baselines: [{{method: slot, dataset: mnist, data_root: {corrupt}}}]\n"
        "max_concurrent: 2\n",
    )
    out = subprocess.run(
        [sys.executable, "-m", "slotsweep", "launch", name, "--num-cpus", "2"],
        cwd=tmp_path,
        env=CLI_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    for reason in ("TrialFailed: training loss became nan", "DataFormatError"):
        lines = [line for line in out.stdout.splitlines() if reason in line]
        assert len(lines) == 2, out.stdout  # the live view's line and the closing table's row
    assert "2 failed trials" in out.stdout and "every trial failed" in out.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("allfail").experiment_id], "tags.`slotsweep.role` = 'trial'"
    )
    assert [run.info.status for run in runs] == ["FAILED", "FAILED"]
    for run in runs:
        text = client.download_artifacts(run.info.run_id, "error.txt", str(tmp_path))
        assert "Traceback" in Path(text).read_text()


def test_the_live_view_gives_each_failed_trial_one_line() -> None:
    from rich.console import Console

    from slotsweep.data import DataNotFoundError
    from slotsweep.launch.progress import StudyProgress, error_reason

    progress = StudyProgress(total=2)
    error = DataNotFoundError("mnist", [Path("/a"), Path("/b")], "no network", "apt-get")
    progress.trial_failed("t1", error_reason(error))
    progress.trial_failed("t2", "ValueError: [1, 2] is no [bold]markup[/]")
    console = Console(width=300, record=True)
    console.print(progress)
    lines = [line for line in console.export_text().splitlines() if line.startswith("failed")]
    assert lines == [
        "failed t1: DataNotFoundError: data set 'mnist' not found. Looked in: / /a / "
        "/b / no network / To get it: apt-get",
        "failed t2: ValueError: [1, 2] is no [bold]markup[/]",
    ]


# --- exceptions that cross Ray's pickling ---


def _exception_classes() -> set[type]:
    import importlib
    import pkgutil

    import slotsweep

    for module in pkgutil.walk_packages(slotsweep.__path__, "slotsweep."):
        # the native kernel is a plain shared library (loaded with ctypes), not a Python module
        if module.name not in (
            "slotsweep.__main__",
            "slotsweep.launch.launcher",
        ) and not module.name.endswith("._slot_kernel"):
            importlib.import_module(module.name)
    found, todo = set(), [BaseException]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("slotsweep."):
                found.add(sub)
    return found


def test_every_slotsweep_exception_survives_pickling() -> None:
    from slotsweep.data import DataFormatError, DataNotFoundError
    from slotsweep.data.download import DownloadError
    from slotsweep.launch.lock import StudyLocked
    from slotsweep.launch.stop import StoppedNow
    from slotsweep.study.schema import StudyError
    from slotsweep.train.checkpoint import DamagedCheckpoint
    from slotsweep.train.result import TrialFailed
    from slotsweep.train.ticket import TicketError

    samples = [
        DataNotFoundError("mnist", [Path("/a"), Path("/b")], "no network", "apt-get"),
        DataFormatError(Path("/x/train-images"), "truncated"),
        DownloadError("offline"),
        StudyError(["trial.k: bad"], "s.yaml"),
        TrialFailed("loss became nan"),
        TicketError("seed 3 != 4"),
        DamagedCheckpoint(Path("/c/training_state.pt"), "does not match its digest"),
        StudyLocked("study s is already being launched"),
        StoppedNow("SIGTERM"),
    ]
    assert {type(sample) for sample in samples} == _exception_classes()
    for sample in samples:
        copy = pickle.loads(pickle.dumps(sample))
        assert type(copy) is type(sample) and str(copy) == str(sample)
        assert vars(copy) == vars(sample)
