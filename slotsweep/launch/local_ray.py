"""The launcher's own local Ray, recorded so that the next launch ends what a killed one left.

A launcher killed with SIGKILL cannot stop its Ray; most of Ray's processes notice and exit, but
some (the dashboard and runtime-env agents) live on, orphaned. Each launch that starts a local
Ray writes the pids and start times of Ray's processes to `.slotsweep/local-ray-STUDY.json` in
the current folder; the next launch of the study (`--resume` or not) ends those still alive
whose start time matches (so a reused pid is never hit), once their launcher is gone.
"""

from __future__ import annotations

import json
from pathlib import Path

import psutil

RECORD_FOLDER = Path(".slotsweep")


def _record_path(study: str) -> Path:
    return RECORD_FOLDER / f"local-ray-{study}.json"


def record(study: str) -> None:
    """Writes this launcher's pid and its Ray's processes (started by `ray.init`, children)."""
    me = psutil.Process()
    processes = [
        {"pid": child.pid, "started": child.create_time()} for child in me.children(recursive=True)
    ]
    path = _record_path(study)
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        json.dumps(
            {"launcher": {"pid": me.pid, "started": me.create_time()}, "processes": processes}
        )
    )


def forget(study: str) -> None:
    """The launch stopped its Ray itself: nothing to end later."""
    _record_path(study).unlink(missing_ok=True)


def _alive(entry: dict[str, float]) -> psutil.Process | None:
    try:
        process = psutil.Process(int(entry["pid"]))
        return process if abs(process.create_time() - entry["started"]) < 1 else None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def end_leftovers(study: str, timeout: float = 10.0) -> int:
    """Ends the recorded Ray processes of a killed launch of `study`; returns how many."""
    path = _record_path(study)
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    if _alive(recorded["launcher"]) is not None:
        return 0  # that launch is still running (another terminal): leave its Ray alone
    leftovers = [p for p in map(_alive, recorded["processes"]) if p is not None]
    for process in leftovers:
        process.terminate()  # ignored by those started with SIGTERM blocked (`stop`): killed below
    _, alive = psutil.wait_procs(leftovers, timeout=timeout)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=timeout)
    path.unlink(missing_ok=True)
    return len(leftovers)
