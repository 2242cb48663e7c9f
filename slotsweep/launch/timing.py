"""Where a launch's time went: the line `slotsweep launch` ends with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slotsweep.train.result import TrialRecord

if TYPE_CHECKING:
    from slotsweep.launch.launcher import LaunchSummary


def launch_timing(summary: LaunchSummary, records: list[TrialRecord], slots: int) -> str:
    """Wall time against the own time of the trials this launch ran, spread over the slots."""
    ran = [r for r in records if r.run_id not in summary.earlier_run_ids]
    finished = [r for r in ran if r.status == "FINISHED"]
    own = sum(r.metrics.get("train_time_s", 0.0) for r in finished)
    ideal = own / max(1, min(slots, len(ran)))
    overhead = summary.wall_time_s - ideal
    data = [r.metrics["data_time_fraction"] for r in finished if "data_time_fraction" in r.metrics]
    waiting = (
        f"; waiting for batches took {100 * sum(data) / len(data):.1f}% of epoch time "
        f"(trial mean; at most {100 * max(data):.1f}%)"
        if data
        else ""
    )
    # runs KILLED by a stop (a signal, a scheduler) count too: `--resume` goes on with them
    stopped = sum(r.status == "KILLED" for r in ran)
    stops = f", {stopped} stopped before they finished" if stopped else ""
    return (
        f"{summary.trials} trials run, {summary.failed} failed{stops}; wall time "
        f"{summary.wall_time_s:.1f} s; trials' own time {own:.1f} s, {ideal:.1f} s over "
        f"{slots} slots; Ray, MLflow and start-up added {overhead:.1f} s "
        f"({100 * overhead / max(summary.wall_time_s, 1e-9):.0f}% of the wall time)"
        f"{waiting}\nMLflow: {summary.tracking_uri}, experiment {summary.experiment}, "
        f"parent run {summary.parent_run_id}"
    )
