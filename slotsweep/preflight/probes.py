"""Time-bounded probes of what trials need from the environment: the MLflow store, the Ray
cluster, the devices and the data. None waits longer than `connect_timeout()` on a thing that
does not answer; each problem is one line naming what was waited for and what to check."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from slotsweep.registry import DEFAULT_TRACKING_URI

TIMEOUT_ENV = "SLOTSWEEP_CONNECT_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
DB_DRIVERS = {"postgresql": "psycopg2", "mysql": "pymysql", "mssql": "pyodbc"}


def connect_timeout() -> float:
    """Seconds to wait for a store, a cluster or a task that does not answer ($SLOTSWEEP_...)."""
    try:
        return max(0.1, float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    except ValueError:
        return DEFAULT_TIMEOUT_S


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


def tracking_problems(uri: str, *, must_exist: bool = False, probe: bool = True) -> list[str]:
    """The MLflow store answers and can be written (`must_exist`: read, and must hold runs).
    Without `probe`, only what needs no network and no driver: the scheme, local paths."""
    from slotsweep.study.store import absolute_tracking_uri

    uri = absolute_tracking_uri(uri)
    scheme = urlparse(uri).scheme
    dialect = scheme.split("+")[0]
    if scheme == "sqlite":
        return _sqlite_problems(Path(uri[len("sqlite:///") :]), uri, must_exist)
    if scheme == "file":
        path = Path(urlparse(uri).path)
        if must_exist and not path.is_dir():
            return [f"tracking store {uri}: no such folder"]
        return output_problems(path, "tracking store", folder=True)
    if dialect in DB_DRIVERS:
        return _database_problems(uri) if probe else []
    if scheme in ("http", "https"):
        return _server_problems(uri) if probe else []
    return [
        f"tracking store {uri}: unsupported scheme {scheme!r}; use sqlite:///PATH, a folder, "
        "postgresql://, mysql://, mssql:// or http(s)://"
    ]


def _sqlite_problems(path: Path, uri: str, must_exist: bool) -> list[str]:
    if str(path) in ("", ":memory:"):
        return [
            f"tracking store {uri}: an in-memory store is not shared with the trials; "
            f"give a file, e.g. {DEFAULT_TRACKING_URI}"
        ]
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
        return [
            f"tracking store {url!r}: its driver is not installed ({exc.name or driver}); "
            "pip install -e '.[cluster]' (or the driver alone)"
        ]
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
        uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    )
    user, password = (os.environ.get(f"MLFLOW_TRACKING_{k}") for k in ("USERNAME", "PASSWORD"))
    if user:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
        request.add_header("Authorization", f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}")
    insecure = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true"
    context = ssl._create_unverified_context() if insecure else None
    try:
        _bounded(
            lambda: urllib.request.urlopen(request, timeout=limit, context=context).close(), limit
        )
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            asked = (
                "refused the credentials of MLFLOW_TRACKING_USERNAME"
                if user
                else "asks for credentials: set MLFLOW_TRACKING_USERNAME and _PASSWORD"
            )
            return [f"tracking store {uri}: HTTP {exc.code}, the server {asked}"]
        return [f"tracking store {uri}: HTTP {exc.code} from its API; is it an MLflow server?"]
    except TimeoutError:
        return [
            f"tracking store {uri}: no answer within {limit:g} s; check that the MLflow "
            "server runs there (mlflow server --host ... --port ...)"
        ]
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return [
            f"tracking store {uri}: {getattr(reason, 'strerror', None) or reason}; check "
            "that the MLflow server runs there"
        ]
    return []


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
            problems.append(
                f"{check['where_device']}: {check['device']!r} requested, but "
                f"{missing} where the trials run ({host})"
            )
        spec = get_spec(check["dataset"])
        if spec.kind == "synthetic":
            continue
        try:
            folder = locate(spec, check["data_root"])
        except DataNotFoundError as exc:
            looked = ", ".join(map(str, exc.looked))
            problems.append(
                f"{check['where_data']}: data set {exc.dataset!r} not found on "
                f"{host} (looked in {looked}). {exc.reason} To get it: "
                f"{exc.how_to_get}"
            )
            continue
        count = _idx_count(folder) if spec.kind == "idx" else None
        if count is not None and (check["train_subset"] or 0) > count:
            problems.append(
                f"{check['where_subset']}: {check['train_subset']} exceeds the "
                f"{count} training examples of {spec.name} in {folder}"
            )
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


def placement_problems(
    needed: dict[str, float], nodes: list[dict[str, float]], where: str
) -> list[str]:
    if any(all(node.get(name, 0) >= amount for name, amount in needed.items()) for node in nodes):
        return []
    largest = {name: max((node.get(name, 0) for node in nodes), default=0) for name in needed}
    short = [f"{amount:g} {name}" for name, amount in needed.items() if largest[name] < amount]
    has = ", ".join(f"{largest[name]:g} {name}" for name in needed)
    return [
        f"resources: no node of {where} can place one trial ({', '.join(short)} needed; "
        f"its largest node has {has}); lower resources or add such a node"
    ]


def _local_node(
    needed: dict[str, float], num_cpus: int | None, num_gpus: int | None = None
) -> dict[str, float]:
    """What the local Ray would offer of each needed resource (torch and psutil imported only
    where a trial asks for GPUs or memory); `num_gpus`: logical GPUs declared by --num-gpus."""
    node = {"CPU": float(num_cpus or os.cpu_count() or 1)}
    if "GPU" in needed:
        if num_gpus is not None:
            node["GPU"] = float(num_gpus)
        else:
            import torch

            node["GPU"] = float(torch.cuda.device_count())
    if "memory" in needed:
        import psutil

        node["memory"] = float(psutil.virtual_memory().available)
    return node


def local_cluster_problems(
    needed: dict[str, float], num_cpus: int | None, num_gpus: int | None = None
) -> list[str]:
    """The local Ray a launch would start can place one trial that reserves `needed`."""
    source = "--num-cpus" if num_cpus else "this machine"
    return placement_problems(
        needed, [_local_node(needed, num_cpus, num_gpus)], f"the local Ray ({source})"
    )


def _split_address(address: str) -> tuple[str, int] | None:
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def remote_cluster_problems(
    needed: dict[str, float], address: str, checks: list[dict[str, Any]]
) -> list[str]:
    """The cluster at `address` answers, can place one trial, and one task there finds the
    device and the data; in a child process, so that a hung connection can be cut off."""
    parsed = _split_address(address)
    if address != "auto" and parsed is None:
        return [
            f"--address {address}: expected HOST:PORT (the head's GCS port), ray://HOST:PORT "
            "or auto"
        ]
    check = "the address (`ray status` on the head node prints it) and the firewall"
    if parsed and (found := tcp_problem(*parsed, "Ray cluster", check)) is not None:
        return [found]
    limit = connect_timeout()
    request = json.dumps({"address": address, "needed": needed, "checks": checks, "limit": limit})
    child = subprocess.Popen(
        [sys.executable, "-m", "slotsweep.launch.cluster_probe"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "RAY_AIR_NEW_OUTPUT": "0"},
    )
    try:
        out, _ = child.communicate(request, timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, 9)
        child.communicate()
        return [
            f"Ray cluster at {address}: no answer within {limit:g} s (connecting, then "
            f"placing a check task); check {check}, and that its Ray version matches"
        ]
    lines = out.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return [
            f"Ray cluster at {address}: the check ended without an answer (exit {child.returncode})"
        ]
