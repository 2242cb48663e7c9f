"""A launch stopped by SIGTERM or SIGINT (SLURM at a time limit or a preemption, Kubernetes
before it kills a pod, Ctrl-C): the trials save a checkpoint and stop, then the launch ends.

The first signal asks every running trial, through Ray's key-value store (seen on every node),
to save a checkpoint at the end of its current epoch and then to wait there; once all have done
so, or the grace period is over, Tune is told to stop (`LaunchStop.stop_all`), which ends the
waiting trials without starting the pending ones. The launcher then marks the unfinished runs
and its parent run KILLED, ends its Ray and exits with `STOPPED_EXIT_CODE`. A second signal
stops at once (`StoppedNow` raised in the main thread).

A trial that waits rather than returning is what keeps Tune from filling its slot with a
pending trial, and from counting it as finished or (raising) retrying it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Collection
from typing import Any

from ray import tune

from slotsweep.train import checkpoint

STOPPED_EXIT_CODE = 3  # the launch was stopped by a signal; `--resume` goes on from there
DEFAULT_GRACE_S = 30.0  # below SLURM's KillWait (30 s) + its --signal lead, Kubernetes' 30 s
_KEY = "slotsweep-stop-{token}"
_PARKED = "slotsweep-parked-{token}-{trial}"


class StoppedNow(BaseException):
    """A second signal: the launch stops at once (raised from the signal handler)."""


@contextlib.contextmanager
def signals_kept_from_children() -> Any:
    """Under SLURM, SIGTERM blocked while a local Ray starts: its processes (and the workers its
    raylet starts) inherit the mask, so the SIGTERM SLURM sends to every process of a job (at a
    time limit, a preemption, `scancel`) reaches the launcher only, which then stops them
    gracefully; otherwise Ray's processes die at once and take the launcher with them. Not done
    elsewhere: `ray.shutdown` then waits a second for each of Ray's processes to ignore its
    SIGTERM before it kills them (4 s more at the end of every launch, measured). Ray blocks
    SIGINT in its processes itself, so Ctrl-C needs none of this."""
    if "SLURM_JOB_ID" not in os.environ:
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _kv() -> Any:
    from ray.experimental import internal_kv

    return internal_kv


class LaunchStop(tune.Stopper):
    """The launcher's side: the signal handlers, the request to the trials, Tune's stop.

    `token` names this launch in Ray's store (the parent run id), so two launches on one
    cluster do not stop each other."""

    def __init__(self, token: str, grace_s: float = DEFAULT_GRACE_S, say: Any = print) -> None:
        self.token, self.grace_s, self.say = token, grace_s, say
        self.signal_name: str | None = None
        self.requested_at: float | None = None
        # Tune's ids of this launch's running trials: the live view's (`StudyProgress.running`),
        # which Tune's trial events keep up to date
        self.running: Collection[str] = ()
        self._previous: dict[int, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {}  # Tune pickles its run config for restores; the stop stays in this process

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__("")

    @property
    def requested(self) -> bool:
        return self.requested_at is not None

    def install(self) -> None:
        """Takes SIGTERM and SIGINT (again after `ray.init`, which sets its own SIGTERM
        handler)."""
        for number in (signal.SIGTERM, signal.SIGINT):
            self._previous.setdefault(number, signal.getsignal(number))
            signal.signal(number, self._on_signal)

    def attach(self, token: str) -> None:
        """Names the launch (`token`) once Ray is up: a request left by an earlier launch of
        this parent run is cleared, or one that came before Ray started is passed on."""
        self.token = token
        self._tell_trials()

    def uninstall(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _tell_trials(self) -> None:
        if not self.token:
            return
        with contextlib.suppress(Exception):  # Ray not up yet: no trial to tell
            kv, key = _kv(), _KEY.format(token=self.token)
            if self.requested:
                kv._internal_kv_put(key, b"1", overwrite=True)
            else:  # an external cluster keeps what a stopped launch of this parent left
                kv._internal_kv_del(key)
                kv._internal_kv_del(_PARKED.format(token=self.token, trial=""), del_by_prefix=True)

    def _on_signal(self, number: int, frame: Any) -> None:
        name = signal.Signals(number).name
        if self.requested:
            for other in self._previous:  # a third signal ends the process as it would have
                signal.signal(other, signal.SIG_DFL)
            raise StoppedNow(name)
        self.signal_name, self.requested_at = name, time.monotonic()
        self._tell_trials()
        self.say(
            f"{name} received: stopping; running trials save a checkpoint at the end of their "
            f"epoch (up to {self.grace_s:g} s); {name} again stops at once"
        )

    def _parked(self, trial_id: str) -> bool:
        with contextlib.suppress(Exception):
            key = _PARKED.format(token=self.token, trial=trial_id)
            return bool(_kv()._internal_kv_exists(key))
        return False

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False  # trials stop themselves at an epoch's end; see `stop_all`

    def stop_all(self) -> bool:
        """Once a signal came: when every running trial has saved and waits, or the grace
        period is over (Tune checks this every step, about ten times a second)."""
        if not self.requested:
            return False
        if time.monotonic() - self.requested_at > self.grace_s:
            return True
        return all(self._parked(trial) for trial in self.running)


def trial_stop_request(token: str) -> Any:
    """The trial's side: a probe saying whether its launch is being stopped (made the
    checkpoint module's, so the next epoch's end saves one), and the wait after that save."""
    key = _KEY.format(token=token)

    def requested() -> bool:
        try:
            return bool(_kv()._internal_kv_exists(key))
        except Exception:  # noqa: BLE001 - no store, no request: training goes on
            return False

    checkpoint.set_stop_probe(requested)

    def wait_if_stopping() -> None:
        if not requested():
            return
        trial = tune.get_context().get_trial_id() or "trial"
        _kv()._internal_kv_put(_PARKED.format(token=token, trial=trial), b"1", overwrite=True)
        threading.Event().wait()  # Tune ends this trial's actor; the run is marked KILLED

    return wait_if_stopping


def stopped_line(stopped: int, finished: int, left: int, resume: str) -> str:
    """What a stopped launch prints last: what it stopped and how to go on."""
    return (
        f"launch stopped: {stopped} trials stopped before they finished (runs KILLED, each "
        f"goes on from its last checkpoint), {finished} finished, {left} left to run; "
        f"go on with: {resume}"
    )
