"""Pre-flight checks: what `validate`, `launch`, `train` and `report` verify before they create
anything (an MLflow store or run, a Ray session, a results folder).

Static checks read only the study and the command line: every number finite (pydantic refuses
inf and nan), every followed metric one that every trial reports, every explicit setting one that
takes effect, every output path writable, every training split holding one batch. Environment
checks look at where the trials run: the tracking store answers and can be written, the Ray
cluster can place a trial, the device exists and the data is found. Nothing here waits longer
than `connect_timeout()` on a thing that does not answer.
"""

from __future__ import annotations

import base64
import concurrent.futures
import inspect
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from slotsweep.config import SLOT_ONLY_KEYS, TrialConfig
from slotsweep.result import metrics_every_trial_reports
from slotsweep.study import DISCRETE_KINDS, Study

TIMEOUT_ENV = "SLOTSWEEP_CONNECT_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
# Archs with CONV-x's dropout and authors' padding (Lenet has no conv, VGG-19 pads every conv).
CONV_X_ARCHS = ("conv2", "conv4", "conv6")
DB_DRIVERS = {"postgresql": "psycopg2", "mysql": "pymysql", "mssql": "pyodbc"}
RAY_RESOURCES = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}


def connect_timeout() -> float:
    """Seconds to wait for a store, a cluster or a task that does not answer ($SLOTSWEEP_...)."""
    try:
        return max(0.1, float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    except ValueError:
        return DEFAULT_TIMEOUT_S


class PreflightError(RuntimeError):
    """Checks failed before anything started; `problems` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(dict.fromkeys(problems))
        super().__init__("pre-flight failed:\n" + "\n".join(f"  {p}" for p in self.problems))

    def __reduce__(self) -> tuple[type, tuple[list[str]]]:
        return type(self), (self.problems,)


# --- the groups of trials a study runs, each setting named by where it was set ---


@dataclass(frozen=True)
class Group:
    """The settings of one group of trials, and for each explicit key where the study set it."""

    settings: dict[str, Any]
    origin: dict[str, str]  # key -> "trial.k", "space.k", "baselines[0].k", "--k"
    flags: bool = False  # `slotsweep train`: keys are named as its flags

    def where(self, key: str) -> str:
        """Where `key` was set, or where it would be set when it holds its default."""
        return self.origin.get(key) or (f"--{key.replace('_', '-')}" if self.flags
                                        else f"trial.{key}")


def _probe_values(study: Study, key: str) -> list[Any]:
    dim = study.space[key]
    if dim.kind in DISCRETE_KINDS:
        return dim.values
    lo, hi = dim.bounds
    return [lo, hi - 1 if dim.kind == "randint" else hi]


def study_groups(study: Study) -> list[Group]:
    """One group per grid or random point, per sampled dimension's bounds (optuna), per baseline."""
    trial, seed = study.base_trial(), study.seeds[0]
    points = study.space_points()
    if study.search.algorithm == "optuna":
        points = [{key: value} for key in study.space for value in _probe_values(study, key)]
    groups = []
    for point in points:
        origin = {key: f"trial.{key}" for key in trial} | {key: f"space.{key}" for key in point}
        groups.append(Group({**trial, **point, "seed": seed}, origin))
    for i, baseline in enumerate(study.baselines):
        origin = {key: f"trial.{key}" for key in trial}
        origin |= {key: f"baselines[{i}].{key}" for key in baseline}
        groups.append(Group({**trial, **baseline, "seed": seed}, origin))
    return groups


# --- static checks ---


def _ignored(config: TrialConfig, key: str) -> str | None:
    """Why an explicit `key` takes no effect in this trial, or None when it does."""
    if key in (*SLOT_ONLY_KEYS, "recipe", "impl") and config.method != "slot":
        return f"applies to method slot only, not {config.method}"
    if key == "impl" and config.impl == "fused" and config.selection != "greedy":
        return "the fused update serves greedy selection only; probabilistic runs the reference"
    if key == "keep_fraction" and config.method != "edge_popup":
        return f"applies to method edge_popup only, not {config.method}"
    if key == "restart_period" and config.schedule != "warm_restarts":
        return f"applies to schedule warm_restarts only, not {config.schedule}"
    if key in ("dropout", "padding") and config.arch not in CONV_X_ARCHS:
        return f"applies to archs {', '.join(CONV_X_ARCHS)} only, not {config.arch}"
    return None


def ignored_setting_problems(groups: Sequence[Group]) -> list[str]:
    """Explicit settings that take effect in none of the trials they reach."""
    reasons: dict[str, list[str | None]] = {}
    values: dict[str, Any] = {}
    for group in groups:
        config = TrialConfig.model_validate(group.settings)
        for key, where in group.origin.items():
            reasons.setdefault(where, []).append(_ignored(config, key))
            values[where] = group.settings[key]
    return [f"{where}: {values[where]!r} would be ignored: {found[0]}"
            for where, found in reasons.items() if all(found)]


def _device_problem(name: str) -> str | None:
    """A device string torch cannot parse (a misspelt name)."""
    if name in ("auto", "cpu"):
        return None
    import torch

    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return f"{name!r} is not a device; use auto, cpu, cuda or cuda:N"
    return None


def _dataset_size(dataset: str) -> int | None:
    """Training examples of a data set known without reading it (the synthetic set's)."""
    if dataset != "synthetic":
        return None
    from slotsweep.data.synthetic import make_synthetic

    return inspect.signature(make_synthetic).parameters["n_train"].default


def split_problems(group: Group) -> list[str]:
    """A training split that cannot hold one batch, or a validation split left empty."""
    from slotsweep.data.catalog import get_spec

    config = TrialConfig.model_validate(group.settings)
    full = _dataset_size(config.dataset)
    if full is not None and config.train_subset and config.train_subset > full:
        return [f"{group.where('train_subset')}: {config.train_subset} exceeds the {full} "
                f"training examples of {config.dataset}"]
    n = config.train_subset or full
    if n is None:
        return []
    fraction = config.val_fraction or get_spec(config.dataset).val_fraction
    held = round(n * fraction)
    if not 0 < held < n:
        return [f"{group.where('train_subset')}: {n} examples with val_fraction {fraction} "
                "leave an empty split; give more examples"]
    if n - held < config.batch_size:
        return [f"{group.where('batch_size')}: {config.batch_size} exceeds the {n - held} "
                f"training examples ({n} minus {held} for validation): not one full batch; "
                "lower batch_size or raise train_subset"]
    return []


def group_problems(groups: Sequence[Group]) -> list[str]:
    """Per-trial static checks: devices, splits, and settings that would be ignored."""
    problems = []
    for group in groups:
        device = group.settings.get("device", "auto")
        if (found := _device_problem(device)) is not None:
            problems.append(f"{group.where('device')}: {found}")
        problems += split_problems(group)
    return problems + ignored_setting_problems(groups)


def metric_problems(study: Study) -> list[str]:
    """Search (and scheduler) metrics that some report of some trial would not hold."""
    known = metrics_every_trial_reports()
    follower = "the search and scheduler" if study.scheduler.name == "asha" else "the search"
    several = len(study.search.metric) > 1
    return [f"search.metric{f'[{i}]' * several}: {name!r} is not reported by every trial at "
            f"every epoch, as {follower} needs; use one of {', '.join(known)}"
            for i, name in enumerate(study.search.metric) if name not in known]


def _unused_section_keys(study: Study) -> list[str]:
    problems = []
    if study.scheduler.name == "fifo":
        problems += [f"scheduler.{key}: applies to scheduler asha only"
                     for key in sorted(study.scheduler.model_fields_set - {"name"})]
    if study.search.algorithm == "grid" and "seed" in study.search.model_fields_set:
        problems.append("search.seed: grid search draws nothing; applies to random and optuna")
    return problems


def study_problems(study: Study, tracking_uri: str | None = None) -> list[str]:
    """Every static problem of a valid study (run by `validate` and `launch`), its store's
    scheme and local path included."""
    groups = study_groups(study)
    problems = metric_problems(study) + _unused_section_keys(study) + group_problems(groups)
    problems += tracking_problems(study.tracking_uri(tracking_uri), probe=False)
    if study.resources.gpu == 0:
        problems += [f"{g.where('device')}: {g.settings['device']!r} needs resources.gpu > 0 "
                     "(Ray shows a trial only the GPUs it reserves)"
                     for g in groups if str(g.settings.get("device", "")).startswith("cuda")]
    return problems


def output_problems(path: Path, what: str, *, folder: bool = False) -> list[str]:
    """Whether `path` (a file, or a folder that may still have to be made) can be written."""
    path = Path(path).expanduser()
    if path.exists():
        if folder != path.is_dir():
            return [f"{what} {path}: is {'not ' * folder}a folder"]
        return [] if os.access(path, os.W_OK) else [f"{what} {path}: not writable"]
    parent = path.parent.resolve()
    while not parent.exists() and folder:  # a folder is made with its parents
        parent = parent.parent
    if not parent.is_dir():
        state = "is not a folder" if parent.exists() else "does not exist"
        return [f"{what} {path}: {parent} {state}"]
    return [] if os.access(parent, os.W_OK) else [f"{what} {path}: folder {parent} not writable"]


# --- bounded waits ---


def _bounded(fn: Callable[[], Any], timeout: float) -> Any:
    """fn() in a daemon thread, TimeoutError after `timeout` s: name lookups ignore socket
    timeouts, and a thread still stuck there must not keep the command from exiting."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome.append((False, exc))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise TimeoutError
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def tcp_problem(host: str, port: int, what: str, check: str) -> str | None:
    """None when host:port accepts a connection within the limit, else why not."""
    limit = connect_timeout()
    try:
        _bounded(lambda: socket.create_connection((host, port), timeout=limit).close(), limit)
    except TimeoutError:
        return f"{what} at {host}:{port}: no answer within {limit:g} s; check {check}"
    except OSError as exc:
        return f"{what} at {host}:{port}: {exc.strerror or exc}; check {check}"
    return None


# --- the tracking store ---


def tracking_problems(uri: str, *, must_exist: bool = False, probe: bool = True) -> list[str]:
    """The MLflow store answers and can be written (`must_exist`: read, and must hold runs).
    Without `probe`, only what needs no network and no driver: the scheme, local paths."""
    from slotsweep.store_uri import absolute_tracking_uri

    uri = absolute_tracking_uri(uri)
    scheme = urlparse(uri).scheme
    dialect = scheme.split("+")[0]
    if scheme == "sqlite":
        return _sqlite_problems(Path(uri[len("sqlite:///"):]), uri, must_exist)
    if scheme == "file":
        path = Path(urlparse(uri).path)
        if must_exist and not path.is_dir():
            return [f"tracking store {uri}: no such folder"]
        return output_problems(path, "tracking store", folder=True)
    if dialect in DB_DRIVERS:
        return _database_problems(uri) if probe else []
    if scheme in ("http", "https"):
        return _server_problems(uri) if probe else []
    return [f"tracking store {uri}: unsupported scheme {scheme!r}; use sqlite:///PATH, a folder, "
            "postgresql://, mysql://, mssql:// or http(s)://"]


def _sqlite_problems(path: Path, uri: str, must_exist: bool) -> list[str]:
    if str(path) in ("", ":memory:"):
        return [f"tracking store {uri}: an in-memory store is not shared with the trials; "
                "give a file, e.g. sqlite:///mlflow.db"]
    if not path.exists():
        if must_exist:
            return [f"tracking store {uri}: no such file (nothing was logged there)"]
        return output_problems(path, "tracking store")
    if path.is_dir():
        return [f"tracking store {uri}: {path} is a folder, not an SQLite file"]
    with open(path, "rb") as file:
        head = file.read(16)
    if head and head != b"SQLite format 3\x00":
        return [f"tracking store {uri}: {path} is not an SQLite database"]
    return [] if must_exist else output_problems(path, "tracking store")


def _database_problems(uri: str) -> list[str]:
    """Driver installed, server reachable, credentials accepted: one connection, bounded."""
    import sqlalchemy

    url = sqlalchemy.engine.make_url(uri)
    try:
        url.get_dialect().import_dbapi()
    except ImportError as exc:
        driver = DB_DRIVERS[url.get_backend_name()]
        return [f"tracking store {url!r}: its driver is not installed ({exc.name or driver}); "
                "pip install -e '.[cluster]' (or the driver alone)"]
    host, port = url.host or "localhost", url.port or url.get_dialect().default_port or 5432
    if (found := tcp_problem(host, port, "tracking store", "that the database runs")) is not None:
        return [found]
    limit = connect_timeout()
    args = {"connect_timeout": max(1, int(limit))} if url.get_backend_name() != "mssql" else {}
    engine = sqlalchemy.create_engine(url, connect_args=args)
    try:
        _bounded(lambda: engine.connect().close(), limit)
    except TimeoutError:
        return [f"tracking store {url!r}: no answer within {limit:g} s after connecting"]
    except sqlalchemy.exc.SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return [f"tracking store {url!r}: {first}; check the database, user and password"]
    finally:
        engine.dispose()
    return []


def _server_problems(uri: str) -> list[str]:
    """An MLflow server answers its API within the limit and accepts the credentials."""
    limit = connect_timeout()
    request = urllib.request.Request(
        uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1")
    user, password = (os.environ.get(f"MLFLOW_TRACKING_{k}") for k in ("USERNAME", "PASSWORD"))
    if user:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
        request.add_header("Authorization", f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}")
    insecure = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true"
    context = ssl._create_unverified_context() if insecure else None
    try:
        _bounded(lambda: urllib.request.urlopen(request, timeout=limit, context=context).close(),
                 limit)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            asked = ("refused the credentials of MLFLOW_TRACKING_USERNAME" if user else
                     "asks for credentials: set MLFLOW_TRACKING_USERNAME and _PASSWORD")
            return [f"tracking store {uri}: HTTP {exc.code}, the server {asked}"]
        return [f"tracking store {uri}: HTTP {exc.code} from its API; is it an MLflow server?"]
    except TimeoutError:
        return [f"tracking store {uri}: no answer within {limit:g} s; check that the MLflow "
                "server runs there (mlflow server --host ... --port ...)"]
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return [f"tracking store {uri}: {getattr(reason, 'strerror', None) or reason}; check "
                "that the MLflow server runs there"]
    return []


# --- where the trials run: resources, device, data ---


def _needed(study: Study) -> dict[str, float]:
    """What one trial reserves, by Ray's resource names (declared, non-zero entries)."""
    declared = study.resources.model_dump()
    return {RAY_RESOURCES.get(k, k): float(v) for k, v in declared.items() if v}


def _placement_problems(needed: dict[str, float], nodes: list[dict[str, float]],
                        where: str) -> list[str]:
    if any(all(node.get(name, 0) >= amount for name, amount in needed.items())
           for node in nodes):
        return []
    largest = {name: max((node.get(name, 0) for node in nodes), default=0) for name in needed}
    short = [f"{amount:g} {name}" for name, amount in needed.items() if largest[name] < amount]
    has = ", ".join(f"{largest[name]:g} {name}" for name in needed)
    return [f"resources: no node of {where} can place one trial ({', '.join(short)} needed; "
            f"its largest node has {has}); lower resources or add such a node"]


def trial_checks(groups: Sequence[Group]) -> list[dict[str, Any]]:
    """What the environment checks need of each group: device and data, and where they came from."""
    checks = []
    for group in groups:
        root = group.settings.get("data_root")
        check = {"device": group.settings.get("device", "auto"),
                 "dataset": group.settings.get("dataset", "fashion_mnist"),
                 "data_root": str(Path(root).expanduser().resolve()) if root else None,
                 "train_subset": group.settings.get("train_subset"),
                 "where_device": group.where("device"), "where_data": group.where("dataset"),
                 "where_subset": group.where("train_subset")}
        if check not in checks:
            checks.append(check)
    return checks


def _device_missing(name: str) -> str | None:
    if name in ("auto", "cpu"):
        return None
    import torch

    device = torch.device(name)
    backend = getattr(torch, device.type, None)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            return "CUDA is not available"
        return f"only {count} CUDA device(s)" if (device.index or 0) >= count else None
    if device.type == "mps":
        return None if torch.backends.mps.is_available() else "MPS is not available"
    available = getattr(backend, "is_available", None)
    return None if available is not None and available() else f"no {device.type} device"


def where_trials_run_problems(checks: list[dict[str, Any]]) -> list[str]:
    """Devices and data as a trial finds them, in the process (or Ray task) that calls this."""
    from slotsweep.data import DataNotFoundError
    from slotsweep.data.catalog import get_spec
    from slotsweep.data.locate import locate

    host, problems = socket.gethostname(), []
    for check in checks:
        if (missing := _device_missing(check["device"])) is not None:
            problems.append(f"{check['where_device']}: {check['device']!r} requested, but "
                            f"{missing} where the trials run ({host})")
        spec = get_spec(check["dataset"])
        if spec.kind == "synthetic":
            continue
        try:
            folder = locate(spec, check["data_root"])
        except DataNotFoundError as exc:
            looked = ", ".join(map(str, exc.looked))
            problems.append(f"{check['where_data']}: data set {exc.dataset!r} not found on "
                            f"{host} (looked in {looked}). {exc.reason} To get it: "
                            f"{exc.how_to_get}")
            continue
        count = _idx_count(folder) if spec.kind == "idx" else None
        if count is not None and (check["train_subset"] or 0) > count:
            problems.append(f"{check['where_subset']}: {check['train_subset']} exceeds the "
                            f"{count} training examples of {spec.name} in {folder}")
    return problems


def _idx_count(folder: Path) -> int | None:
    """The example count in the training labels' IDX header (None where it cannot be read:
    the trial reports why)."""
    import gzip

    from slotsweep.data.idx import STEMS, find_file

    path = find_file(folder, STEMS["train"][1])
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
            header = file.read(8)
    except (OSError, EOFError):
        return None
    return int.from_bytes(header[4:8], "big") if len(header) == 8 else None


def _local_node(needed: dict[str, float], num_cpus: int | None) -> dict[str, float]:
    """What the local Ray would offer of each needed resource (torch and psutil imported only
    where a trial asks for GPUs or memory)."""
    node = {"CPU": float(num_cpus or os.cpu_count() or 1)}
    if "GPU" in needed:
        import torch

        node["GPU"] = float(torch.cuda.device_count())
    if "memory" in needed:
        import psutil

        node["memory"] = float(psutil.virtual_memory().available)
    return node


def local_cluster_problems(study: Study, num_cpus: int | None) -> list[str]:
    """The local Ray this launch would start can place one trial."""
    needed = _needed(study)
    source = "--num-cpus" if num_cpus else "this machine"
    return _placement_problems(needed, [_local_node(needed, num_cpus)],
                               f"the local Ray ({source})")


def _split_address(address: str) -> tuple[str, int] | None:
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def remote_cluster_problems(study: Study, address: str, checks: list[dict[str, Any]]) -> list[str]:
    """The cluster at `address` answers, can place one trial, and one task there finds the
    device and the data; in a child process, so that a hung connection can be cut off."""
    parsed = _split_address(address)
    if address != "auto" and parsed is None:
        return [f"--address {address}: expected HOST:PORT (the head's GCS port), ray://HOST:PORT "
                "or auto"]
    check = "the address (`ray status` on the head node prints it) and the firewall"
    if parsed and (found := tcp_problem(*parsed, "Ray cluster", check)) is not None:
        return [found]
    limit = connect_timeout()
    request = json.dumps({"address": address, "needed": _needed(study), "checks": checks,
                          "limit": limit})
    code = "from slotsweep.preflight import cluster_probe_main; cluster_probe_main()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, env={**os.environ, "RAY_AIR_NEW_OUTPUT": "0"})
    try:
        out, _ = child.communicate(request, timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, 9)
        child.communicate()
        return [f"Ray cluster at {address}: no answer within {limit:g} s (connecting, then "
                f"placing a check task); check {check}, and that its Ray version matches"]
    lines = out.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return [f"Ray cluster at {address}: the check ended without an answer (exit "
                f"{child.returncode})"]


def cluster_probe_main() -> None:
    """The child of `remote_cluster_problems`: connects, compares nodes, runs the check task."""
    import logging
    import time

    request = json.load(sys.stdin)
    started, limit = time.monotonic(), request["limit"]
    problems: list[str] = []
    try:
        import ray

        ray.init(address=request["address"], logging_level=logging.ERROR, log_to_driver=False)
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        needed = request["needed"]
        problems = _placement_problems(needed, nodes, f"the cluster at {request['address']}")
        if not problems:
            place = {"num_cpus": needed.get("CPU", 0), "num_gpus": needed.get("GPU", 0)}
            place |= {"memory": needed["memory"]} if "memory" in needed else {}
            task = ray.remote(**place)(where_trials_run_problems)
            remaining = max(1.0, limit - (time.monotonic() - started) - 1)
            try:
                problems = ray.get(task.remote(request["checks"]), timeout=remaining)
            except ray.exceptions.GetTimeoutError:
                problems = [f"Ray cluster at {request['address']}: a check task did not run "
                            f"within {remaining:.0f} s; the cluster may be busy"]
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line for the user
        while exc.__cause__ is not None:  # Ray's ConnectionError hides why (a token, a version)
            exc = exc.__cause__
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        problems = [f"Ray cluster at {request['address']}: {type(exc).__name__}: {first}"]
    print(json.dumps(problems), flush=True)
    os._exit(0)  # Ray's shutdown hooks can take seconds; the answer is out


def environment_problems(study: Study, *, address: str | None, num_cpus: int | None,
                         tracking_uri: str | None) -> list[str]:
    """The store, the cluster, the devices and the data, each probed within the limit; the
    store and the cluster at once, so that two dead ones cost one wait."""
    checks = trial_checks(study_groups(study))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        store = pool.submit(tracking_problems, study.tracking_uri(tracking_uri))
        if address:
            cluster = remote_cluster_problems(study, address, checks)
        else:
            cluster = local_cluster_problems(study, num_cpus) or where_trials_run_problems(checks)
        return store.result() + cluster


def launch_problems(study: Study, *, address: str | None, num_cpus: int | None) -> list[str]:
    """What the launch command adds to the study's static checks."""
    problems = output_problems(Path("ray_results"), "Ray results folder", folder=True)
    if address and num_cpus:
        problems.append("--num-cpus: applies to a local Ray; the cluster at --address has its own")
    return problems


def train_problems(config: TrialConfig, given: Sequence[str], json_path: Path | None,
                   tracking_uri: str | None, experiment: str = "slotsweep-train") -> list[str]:
    """`slotsweep train`'s checks: the flags, the --json path, the device, the data, the store
    (None: nothing is logged)."""
    group = Group(config.model_dump(), {key: f"--{key.replace('_', '-')}" for key in given},
                  flags=True)
    problems = group_problems([group])
    if tracking_uri is not None and not experiment.strip():
        problems.append("--experiment: give a name")
    if json_path is not None:
        problems += output_problems(json_path, "--json")
    if not problems:
        problems = where_trials_run_problems(trial_checks([group]))
    if tracking_uri is not None:
        problems += tracking_problems(tracking_uri)
    return problems
