"""The parent run as the study's summary: best configuration, counts, table, figures, plan."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from rich.console import Console

from slotsweep.analysis import row_interval
from slotsweep.report import (
    ConfigurationRow,
    compare,
    reported_metrics,
    varying_settings,
    write_report,
)
from slotsweep.study.schema import Study
from slotsweep.tracking.histories import metric_histories
from slotsweep.tracking.queries import log_study_summary, trial_records
from slotsweep.tracking.tags import BEST, BEST_BY
from slotsweep.train.result import TrialRecord


def best_row(
    rows: list[ConfigurationRow], metric: str = "best_val_accuracy", mode: str = "max"
) -> ConfigurationRow | None:
    """The configuration with the best mean of `metric` (the study's objective by default)."""
    scored = [row for row in rows if row.mean(metric) is not None]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda row: row.mean(metric))


def comparison_columns(rows: list[ConfigurationRow]) -> dict[str, list]:
    """The comparison as columns: varying settings, counts, mean, std and 95% t-interval
    (`_ci_low`, `_ci_high`; None with one seed) of each metric."""
    keys = varying_settings(rows)
    table: dict[str, list] = {key: [row.settings.get(key, "-") for row in rows] for key in keys}
    table["finished"] = [row.finished for row in rows]
    table["failed"] = [row.failed for row in rows]
    for metric in reported_metrics():
        for stat in ("mean", "std"):
            table[f"{metric}_{stat}"] = [getattr(row, stat)(metric) for row in rows]
        intervals = [row_interval(row, metric) for row in rows]
        table[f"{metric}_ci_low"] = [i.low if i else None for i in intervals]
        table[f"{metric}_ci_high"] = [i.high if i else None for i in intervals]
    return table


def plan_note(study: Study) -> str:
    """The run description: the study's description and its plan, as MLflow shows markdown."""
    from slotsweep.study.plan import plan_summary, plan_table

    buffer = io.StringIO()
    Console(file=buffer, width=120, color_system=None).print(plan_table(study))
    return (
        f"{study.description}\n\n```\n{buffer.getvalue()}{plan_summary(study)}\n```\n"
        if study.description
        else f"```\n{buffer.getvalue()}{plan_summary(study)}\n```\n"
    )


def summary_values(
    records: list[TrialRecord], rows: list[ConfigurationRow], metric: str, mode: str
) -> tuple[dict[str, str], dict[str, float]]:
    """(tags, metrics) of the summary: the best configuration and the trial counts."""
    finished = sum(record.status == "FINISHED" for record in records)
    metrics = {
        "trials_finished": float(finished),
        "trials_failed": float(len(records) - finished),
        "configurations": float(len(rows)),
    }
    tags = {BEST_BY: f"{metric} ({mode}, mean over seeds)"}
    best = best_row(rows, metric, mode)
    if best is not None:
        tags.update({BEST + key: best.settings.get(key, "-") for key in varying_settings(rows)})
        for name in reported_metrics():
            interval = row_interval(best, name)
            if interval is not None:
                metrics[BEST + name] = interval.mean
                metrics[f"{BEST}{name}_std"] = best.std(name)
            if interval is not None and interval.defined:  # one seed: no interval, no metric
                metrics[f"{BEST}{name}_ci_low"] = interval.low
                metrics[f"{BEST}{name}_ci_high"] = interval.high
        tags[BEST + "seeds"] = str(best.finished)
    return tags, metrics


def _finished(records: list[TrialRecord]) -> list[str]:
    return [record.run_id for record in records if record.status == "FINISHED"]


def summarize_study(
    uri: str,
    experiment: str,
    parent_run_id: str,
    study: Study | None = None,
    files: list[Path] | None = None,
) -> None:
    """Writes the summary onto the parent run; without `files`, writes the report's own."""
    records = trial_records(uri, experiment, parent_run_id)
    rows = compare(records)
    metric = study.search.metric[0] if study else "best_val_accuracy"
    mode = study.search.mode[0] if study else "max"
    tags, metrics = summary_values(records, rows, metric, mode)
    note = plan_note(study) if study else None
    with tempfile.TemporaryDirectory() as folder:
        written = (
            files
            if files is not None
            else write_report(
                rows,
                Path(folder),
                objective=(metric, mode),
                histories=metric_histories(uri, _finished(records)),
            )
        )
        log_study_summary(
            uri,
            parent_run_id,
            tags=tags,
            metrics=metrics,
            table=comparison_columns(rows),
            files=written,
            note=note,
        )
