"""One launch of a study at a time on one store: a lock file held for the whole launch.

The lock is an exclusive `flock` on a file kept beside a SQLite store (`.slotsweep/locks/`), or
for a server store in the user's cache folder, named by the study and (for a server) the store's
address. The kernel releases a `flock` when its holder dies, however it dies, so a lock whose
holder crashed is simply taken; the holder's host, pid and start time written into the file
name the running launch to a second one, and say, when it is taken over, whose it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from slotsweep.tracking.store import sqlite_file

WAIT_POLL_S = 2.0


class StudyLocked(Exception):
    """Another launch of the study holds the lock; the message names it."""


def lock_path(tracking_uri: str, study: str) -> Path:
    """Where the lock of `study` on this store lies."""
    db = sqlite_file(tracking_uri)
    if db is not None:
        return db.parent / ".slotsweep" / "locks" / f"{db.name}-{study}.lock"
    store = hashlib.sha256(tracking_uri.encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "slotsweep" / "locks" / f"{store}-{study}.lock"


def _holder(file: IO[str]) -> dict[str, Any]:
    file.seek(0)
    with contextlib.suppress(ValueError):
        return json.loads(file.read() or "{}")
    return {}


def _running_holder(file: IO[str], timeout: float = 2.0) -> dict[str, Any]:
    """The holder of a lock just found taken: a launch that took it this instant writes its name
    right after, so an empty record is read again until then (rather than naming "pid ?")."""
    deadline = time.monotonic() + timeout
    holder = _holder(file)
    while not holder and time.monotonic() < deadline:
        time.sleep(0.02)
        holder = _holder(file)
    return holder


def describe(holder: dict[str, Any]) -> str:
    since = holder.get("since")
    when = datetime.fromtimestamp(since).isoformat(" ", "seconds") if since else "?"
    return f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, since {when}"


def _try(file: IO[str]) -> bool:
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


@contextlib.contextmanager
def study_lock(
    tracking_uri: str, study: str, *, wait: bool = False, say: Callable[[str], None] = print
) -> Iterator[Path]:
    """Holds the study's lock for the block; `StudyLocked` naming the holder when another
    launch has it, unless `wait`, which waits for it (saying so once)."""
    path = lock_path(tracking_uri, study)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as file:
        waited = False
        while not _try(file):
            holder = describe(_running_holder(file))
            if not wait:
                raise StudyLocked(
                    f"study {study} is already being launched on this store ({holder}; "
                    f"lock {path}); wait for it with --wait"
                )
            if not waited:
                say(f"waiting for the running launch of study {study} ({holder}) to end")
                waited = True
            time.sleep(WAIT_POLL_S)
        earlier = _holder(file)
        if earlier.get("pid") and not waited:  # its holder died without letting go
            say(f"took over the lock of a launch that died holding it ({describe(earlier)})")
        file.seek(0)
        file.truncate()
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        file.write(json.dumps(me))
        file.flush()
        try:
            yield path
        finally:
            file.seek(0)
            file.truncate()  # released cleanly: nothing to take over
            file.flush()
            fcntl.flock(file, fcntl.LOCK_UN)
