"""A thousand-trial Optuna (TPE) search, max_concurrent 8, against `mlflow server` on PostgreSQL:
launched with its output in a file, SIGKILLed once `--kill-at` trials finished, `--resume`d,
then `report` and `ui` over it. Prints each step's time; run as root (it makes and drops its own
PostgreSQL role and database with `runuser -u postgres psql`, and drops them after).

    .venv/bin/python bench/bench_thousand.py [--trials 1000] [--kill-at 400] [--keep DIR]
        [--keep-store]

`--keep-store` leaves the database (its URI in DIR/store.txt) for later runs of
`--store URI --keep DIR`, which serve it again and time only `report` and `ui` over it (drop it
afterwards with `--drop URI`).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROLE, PASSWORD = "slotsweep_bench16", "bench16"
ENV = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


def psql(sql: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        check=True,
        capture_output=True,
        timeout=120,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            urllib.request.urlopen(url, timeout=5)
            return time.perf_counter() - started
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def slotsweep(*args: str, folder: Path, **popen: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "slotsweep", *args], cwd=folder, env=ENV, **popen
    )


STUDY = """\
name: thousand
trial: {{arch: lenet_300_100, dataset: synthetic, method: slot, epochs: 1, train_subset: 128,
        batch_size: 64}}
space:
  k: {{choice: [1, 2, 4, 8, 16]}}
  lr: {{loguniform: [0.01, 1.0]}}
search: {{algorithm: optuna, sampler: tpe, num_samples: {trials}, seed: 0}}
resources: {{cpu: 0.25, gpu: 0}}
max_concurrent: 8
tracking: {{uri: "{uri}", experiment: thousand}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--kill-at", type=int, default=400)
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--keep-store", action="store_true", help="leave the database")
    parser.add_argument("--store", help="a kept database: only report and ui over it")
    parser.add_argument("--drop", help="drop a kept database and the bench's role")
    args = parser.parse_args()
    if args.drop:
        psql(f"DROP DATABASE IF EXISTS {args.drop.rsplit('/', 1)[1]} WITH (FORCE)")
        psql(f"DROP ROLE IF EXISTS {ROLE}")
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-thousand-"))
    folder.mkdir(parents=True, exist_ok=True)
    database = (args.store or "").rsplit("/", 1)[-1] or f"slotsweep_b16_{uuid.uuid4().hex[:8]}"
    if subprocess.run(["pg_isready", "-q"]).returncode != 0:  # as the tests start it
        subprocess.run(["pg_ctlcluster", "15", "main", "start"], capture_output=True, timeout=120)
        started = time.perf_counter()
        while subprocess.run(["pg_isready", "-q"]).returncode != 0:
            if time.perf_counter() - started > 60:
                raise SystemExit("PostgreSQL did not start")
            time.sleep(0.5)
    psql(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN "
        f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'; END IF; END $$;"
    )
    if not args.store:
        psql(f"CREATE DATABASE {database} OWNER {ROLE}")
    store = f"postgresql+psycopg://{ROLE}:{PASSWORD}@127.0.0.1:5432/{database}"
    port = free_port()
    server_log = open(folder / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
         "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "2"],
        env={**ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=server_log, stderr=server_log, start_new_session=True,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 180)
        (folder / "store.txt").write_text(store + "\n")
        if args.store:
            report_and_ui(folder, write_study(folder, args, f"http://127.0.0.1:{port}"), store)
        else:
            run(folder, args, f"http://127.0.0.1:{port}", store)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        if args.keep_store or args.store:
            print(f"store kept: {store} (drop: bench_thousand.py --drop {store})")
        else:
            psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            psql(f"DROP ROLE IF EXISTS {ROLE}")


def write_study(folder: Path, args: argparse.Namespace, uri: str) -> Path:
    study = folder / "thousand.yaml"
    study.write_text(STUDY.format(trials=args.trials, uri=uri))
    return study


def run(folder: Path, args: argparse.Namespace, uri: str, store: str) -> None:
    study = write_study(folder, args, uri)
    log = folder / "first.log"
    started = time.perf_counter()
    with open(log, "w") as out:
        first = slotsweep("launch", str(study), "--num-cpus", "2", folder=folder, stdout=out,
                          stderr=subprocess.STDOUT)  # fmt: skip
        while first.poll() is None and log.read_text().count(" finished: ") < args.kill_at:
            time.sleep(0.5)
        if first.poll() is not None:
            raise SystemExit(f"the launch ended by itself ({first.returncode}): see {log}")
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed = time.perf_counter() - started
    done_first = log.read_text().count(" finished: ")
    print(f"first launch: {done_first} trials finished in {killed:.0f} s, then SIGKILL")
    started = time.perf_counter()
    with open(folder / "resume.log", "w") as out:
        code = slotsweep("launch", str(study), "--num-cpus", "2", "--resume", folder=folder,
                         stdout=out, stderr=subprocess.STDOUT).wait()  # fmt: skip
    resumed = time.perf_counter() - started
    text = (folder / "resume.log").read_text()
    print(
        f"resume: exit {code}, {text.count(' started')} trials started, "
        f"{text.count(' finished: ')} finished in {resumed:.0f} s; "
        f"search wall time {killed + resumed:.0f} s"
    )
    report_and_ui(folder, study, store)


def report_and_ui(folder: Path, study: Path, store: str) -> None:
    """`report` over the study (its time and the load average), then `ui`."""
    started = time.perf_counter()
    with open(folder / "report.log", "w") as out:
        code = slotsweep("report", str(study), "--out", str(folder / "report"), folder=folder,
                         stdout=out, stderr=subprocess.STDOUT).wait()  # fmt: skip
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"report: exit {code} in {time.perf_counter() - started:.1f} s (load average {load})")
    ui(folder, store)


def ui(folder: Path, store: str) -> None:
    """`slotsweep ui` on the store: time to its links, time until the UI answers."""
    port = free_port()
    started = time.perf_counter()
    out = open(folder / "ui.log", "w")
    process = slotsweep("ui", "--tracking-uri", store, "--experiment", "thousand", "--port",
                        str(port), folder=folder, stdout=out, stderr=subprocess.STDOUT,
                        start_new_session=True)  # fmt: skip
    try:
        while "compare:" not in (folder / "ui.log").read_text():
            if process.poll() is not None:
                raise SystemExit(f"ui exited: {(folder / 'ui.log').read_text()[-2000:]}")
            time.sleep(0.1)
        links = time.perf_counter() - started
        wait_http(f"http://127.0.0.1:{port}/health", 180)
        print(f"ui: links in {links:.1f} s, UI answering in {time.perf_counter() - started:.1f} s")
        if os.environ.get("BENCH_SCREENSHOTS", "1") == "1":
            screenshots(folder, (folder / "ui.log").read_text())
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def screenshots(folder: Path, printed: str) -> None:
    """Each printed link in headless Chromium: time until its table is drawn, a screenshot."""
    import re

    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        for name in ("trials", "compare"):
            link = re.search(rf"^{name}:\s+(\S+)", printed, re.M).group(1)
            started = time.perf_counter()
            page.goto(link)
            page.wait_for_function("document.body.innerText.includes('slot-lenet')", timeout=180e3)
            drawn = time.perf_counter() - started
            page.screenshot(path=str(folder / f"{name}.png"))
            print(f"ui {name} link: drawn in {drawn:.1f} s ({len(link)} characters)")
        browser.close()


if __name__ == "__main__":
    main()
