"""How a launch shows its progress: the live view on a terminal; elsewhere (a log file, `nohup`,
SLURM, a KubeRay job) plain lines: one per trial start, finish and failure, and a status line at
least every `SLOTSWEEP_STATUS_INTERVAL_S` seconds (30), with no control characters."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.live import Live

from slotsweep.launch.progress import StudyProgress

STATUS_INTERVAL_S = 30.0


def status_interval() -> float:
    """Seconds between status lines in a log (`SLOTSWEEP_STATUS_INTERVAL_S`, else 30)."""
    value = os.environ.get("SLOTSWEEP_STATUS_INTERVAL_S")
    try:
        seconds = float(value) if value else STATUS_INTERVAL_S
    except ValueError:
        raise ValueError(f"SLOTSWEEP_STATUS_INTERVAL_S must be seconds, got {value!r}") from None
    if seconds <= 0:
        raise ValueError(f"SLOTSWEEP_STATUS_INTERVAL_S must be positive, got {value!r}")
    return seconds


def plain_line(console: Console) -> Callable[[str], None]:
    """Writes one line, stamped with the time: no markup, colour or wrapping."""
    lock = threading.Lock()  # trial events (Tune's loop) and the status thread

    def write(text: str) -> None:
        line = "".join(c if c.isprintable() else " " for c in text)
        with lock:
            console.print(
                f"{time.strftime('%H:%M:%S')} {line}",
                markup=False,
                highlight=False,
                soft_wrap=True,
                emoji=False,
            )
            console.file.flush()

    return write


@contextlib.contextmanager
def progress_view(progress: StudyProgress, console: Console) -> Iterator[None]:
    """The live view on a terminal, else plain lines (the trial events, a status line every
    interval and a last one at the end)."""
    if console.is_terminal:
        with Live(progress, console=console, refresh_per_second=2, transient=False):
            yield
        return
    write = plain_line(console)
    progress.log = write
    stop = threading.Event()
    interval = status_interval()

    def status() -> None:
        while not stop.wait(interval):
            write(f"status: {progress.summary()}")

    thread = threading.Thread(target=status, name="slotsweep-status", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        progress.log = None
        write(f"status: {progress.summary()}")
