"""The live view of a running study: trials done, running and failed (one line each, with its
reason), the best, the time left; and the closing list of failed trials."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from slotsweep.config import inapplicable_to_method

REASON_WIDTH = 160  # a failure's reason on one line; the whole traceback is in its error.txt
SHOWN_FAILURES = 10  # the live view lists the latest failures, the closing table all of them


def one_line(reason: str, width: int = REASON_WIDTH) -> str:
    """A failure reason on one line: its lines joined, cut at `width` characters."""
    text = " / ".join(line.strip() for line in str(reason).splitlines() if line.strip())
    return text if len(text) <= width else text[: width - 3] + "..."


def error_reason(error: BaseException | None) -> str:
    """'Type: message' of an exception (of its cause when Ray wrapped it), on one line."""
    cause = getattr(error, "cause", None) or error
    if cause is None:
        return "failed (the trial's error.txt holds the traceback)"
    return one_line(f"{type(cause).__name__}: {cause}")


@dataclass
class StudyProgress:
    """Counts trial events and renders them; fed by the orchestrator's Tune callback."""

    total: int
    metric: str = "best_val_accuracy"
    mode: str = "max"
    max_concurrent: int = 1
    started: float = field(default_factory=time.monotonic)
    running: dict[str, float] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # failed trial -> one-line reason
    best: float | None = None
    best_trial: str | None = None
    last: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # trial id -> `slot k=32 seed 0`
    values: dict[str, float] = field(default_factory=dict)  # trial id -> its latest objective
    # where each trial event goes as one line (a launch whose output is not a terminal)
    log: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self._bar = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
        )
        self._task = self._bar.add_task("", total=self.total)

    @property
    def done(self) -> int:
        return len(self.durations) + len(self.failed)

    def trial_started(self, trial_id: str, name: str | None = None) -> None:
        self.running[trial_id] = time.monotonic()
        if name:
            self.names[trial_id] = name
        self._log(f"trial {self.name(trial_id)} started")

    def name(self, trial_id: str | None) -> str:
        """A trial as its settings name it, else Tune's id."""
        return self.names.get(trial_id or "", trial_id or "")

    def trial_result(self, trial_id: str, metrics: dict[str, object]) -> None:
        """Records a reported result; tracks the best value of the study's metric."""
        value = metrics.get(self.metric)
        if isinstance(value, (int, float)):
            self.values[trial_id] = float(value)
            better = self.best is None or (
                value > self.best if self.mode == "max" else value < self.best
            )
            if better:
                self.best, self.best_trial = float(value), trial_id
        epoch = metrics.get("training_iteration")
        self.last[trial_id] = f"epoch {epoch}" if epoch is not None else ""

    def trial_finished(self, trial_id: str) -> None:
        start = self.running.pop(trial_id, time.monotonic())
        self.durations.append(time.monotonic() - start)
        value = self.values.get(trial_id)
        shown = "-" if value is None else f"{value:.4f}"
        self._log(
            f"trial {self.name(trial_id)} finished: {self.metric} {shown} "
            f"in {self.durations[-1]:.1f} s"
        )

    def trial_failed(self, trial_id: str, reason: str = "") -> None:
        start = self.running.pop(trial_id, None)
        self.failed.append(trial_id)
        # never an empty reason: the traceback is in the trial's error.txt either way
        self.reasons[trial_id] = one_line(reason) if reason.strip() else error_reason(None)
        after = "" if start is None else f" (after {time.monotonic() - start:.1f} s)"
        self._log(f"trial {self.name(trial_id)} failed: {self.reasons[trial_id]}{after}")

    def _log(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def seconds_left(self) -> float | None:
        """Mean trial time x remaining trials / concurrency; None before any trial finished."""
        if not self.durations:
            return None
        remaining = max(self.total - self.done, 0)
        mean = sum(self.durations) / len(self.durations)
        return mean * remaining / max(1, min(self.max_concurrent, remaining or 1))

    def summary(self) -> str:
        """One line: counts, best so far, elapsed and time left."""
        left = self.seconds_left()
        best = "-" if self.best is None else f"{self.best:.4f} ({self.name(self.best_trial)})"
        return (
            f"done {len(self.durations)}  running {len(self.running)}  "
            f"failed {len(self.failed)}  best {self.metric} {best}  "
            f"elapsed {time.monotonic() - self.started:.0f}s  "
            f"left {'?' if left is None else f'{left:.0f}s'}"
        )

    def __rich__(self) -> Group:
        self._bar.update(
            self._task, total=self.total, completed=self.done, description=self.summary()
        )
        table = Table(show_header=True, header_style="bold", box=None)
        table.add_column("running trial")
        table.add_column("progress")
        table.add_column("time", justify="right")
        now = time.monotonic()
        for trial_id, start in sorted(self.running.items()):
            table.add_row(self.name(trial_id), self.last.get(trial_id, ""), f"{now - start:.0f}s")
        return Group(self._bar, table, *self._failure_lines())

    def _failure_lines(self) -> list[Text]:
        shown = self.failed[-SHOWN_FAILURES:]
        lines = [
            Text.assemble(
                ("failed ", "red"), f"{self.name(trial_id)}: {self.reasons.get(trial_id)}"
            )
            for trial_id in shown
        ]
        more = len(self.failed) - len(shown)
        return ([Text(f"failed ... and {more} earlier", "red")] if more else []) + lines


def failures_table(failed: list[tuple[str, str, str]]) -> Table | None:
    """The closing list: one row per failed trial (its run, its settings, its reason)."""
    if not failed:
        return None
    table = Table(
        title=f"{len(failed)} failed trials (tracebacks: each run's error.txt)",
        header_style="bold",
        box=None,
    )
    for column in ("run", "trial", "reason"):  # one line per trial: the reason is cut to fit
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for run, settings, reason in failed:
        table.add_row(run, settings, one_line(reason))
    return table


def distinguishing_keys(trials: Sequence[dict[str, Any]]) -> list[str]:
    """The settings whose values (or presence) differ between trials, seed and method aside."""
    keys = sorted({key for settings in trials for key in settings} - {"seed", "method"})
    return [key for key in keys if len({repr(s.get(key)) for s in trials}) > 1]


def trial_name(settings: dict[str, Any], keys: Sequence[str]) -> str:
    """A trial named by its settings: `slot k=32 seed 0` (method, the keys given, seed)."""
    method = str(settings.get("method", "slot"))
    ignored = inapplicable_to_method(method)
    parts = [method] + [
        f"{key}={settings[key]}"
        for key in keys
        if settings.get(key) is not None and key not in ignored
    ]
    return " ".join(parts + [f"seed {settings.get('seed', 0)}"])
