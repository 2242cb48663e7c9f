"""The parent run as the study's summary: best configuration, counts, table, figures, plan."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

from rich.console import Console

from slotsweep.analysis import (
    STATS,
    ConfigurationRow,
    best_rows,
    compare,
    reported_metrics,
    row_interval,
    row_stats,
    search_front,
    varying_settings,
)
from slotsweep.report import write_report
from slotsweep.study.schema import Study
from slotsweep.tracking.histories import metric_histories
from slotsweep.tracking.queries import log_study_summary, study_document, trial_records
from slotsweep.tracking.tags import BEST, BEST_BY
from slotsweep.train.result import TrialRecord


def best_row(
    rows: list[ConfigurationRow], metric: str = "best_val_accuracy", mode: str = "max"
) -> ConfigurationRow | None:
    """The configuration with the best mean of `metric` (the study's objective by default; the
    first of equals), ranked as the closing table and the curves rank them (`best_rows`)."""
    scored = [row for row in rows if row.mean(metric) is not None]
    return next(iter(best_rows(scored, (metric, mode), 1)), None)


def comparison_columns(rows: list[ConfigurationRow]) -> dict[str, list]:
    """The comparison as columns: varying settings, counts, mean, std and 95% t-interval
    (`_ci_low`, `_ci_high`; None with one seed) of each metric."""
    keys = varying_settings(rows)
    table: dict[str, list] = {key: [row.settings.get(key, "-") for row in rows] for key in keys}
    table["finished"] = [row.finished for row in rows]
    table["failed"] = [row.failed for row in rows]
    table["stopped"] = [row.stopped for row in rows]
    for metric in reported_metrics():
        stats = [row_stats(row, metric) for row in rows]  # the columns of comparison.csv
        for stat in STATS:
            table[f"{metric}_{stat}"] = [values[stat] for values in stats]
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


Objectives = list[tuple[str, str]]  # (metric, mode) of a study's search, in its order
MAX_FRONT = 20  # front members described one by one in best.front.I.* (all in best.front)


def search_objectives(study: Study | None, document: dict | None = None) -> Objectives:
    """The (metric, mode) pairs a study's search followed: from the study, else from the study
    document a launch logged, else the default (best_val_accuracy, max)."""
    if study is not None:
        return list(zip(study.search.metric, study.search.mode, strict=True))
    search = (document or {}).get("search") or {}
    metrics, modes = search.get("metric", ["best_val_accuracy"]), search.get("mode", ["max"])
    metrics = [metrics] if isinstance(metrics, str) else metrics
    modes = [modes] if isinstance(modes, str) else modes
    return list(zip(metrics, modes, strict=True))


def interval_metrics(key: str, row: ConfigurationRow, metric: str) -> dict[str, float]:
    """`key`: the row's mean of `metric` (which it has), `key`_ci_low and `key`_ci_high its 95%
    interval (one seed: no interval, no metric)."""
    interval = row_interval(row, metric)
    bounds = {"_ci_low": interval.low, "_ci_high": interval.high} if interval.defined else {}
    return {key: interval.mean, **{key + end: value for end, value in bounds.items()}}


def front_values(rows: list[ConfigurationRow], objectives: Objectives) -> tuple[dict, dict]:
    """(tags, metrics) describing a multi-objective search's front: its size, every member (as
    JSON in `best.front`), and the first MAX_FRONT members' settings and objective means (with
    95% intervals) as `best.front.I.*`, ordered by the first objective, best first."""
    first, mode = objectives[0]
    members = sorted(search_front(rows, objectives), key=lambda r: r.mean(first) or 0.0)
    members = members[::-1] if mode == "max" else members
    keys = varying_settings(rows)
    described = [
        {**{k: row.settings.get(k, "-") for k in keys}, **{m: row.mean(m) for m, _ in objectives}}
        for row in members
    ]
    tags = {BEST + "front": json.dumps(described)}
    metrics = {BEST + "front_size": float(len(members))}
    for index, row in enumerate(members[:MAX_FRONT]):
        tags.update({f"{BEST}front.{index}.{k}": row.settings.get(k, "-") for k in keys})
        for metric, _ in objectives:  # a front member has every objective
            metrics.update(interval_metrics(f"{BEST}front.{index}.{metric}", row, metric))
    return tags, metrics


def summary_values(
    records: list[TrialRecord], rows: list[ConfigurationRow], objectives: Objectives
) -> tuple[dict[str, str], dict[str, float]]:
    """(tags, metrics) of the summary: the trial counts, and the best configuration by the
    objective, or, for a search of several objectives, the front it found."""
    finished = sum(record.status == "FINISHED" for record in records)
    failed = sum(record.status == "FAILED" for record in records)
    metrics = {
        "trials_finished": float(finished),
        "trials_failed": float(failed),
        # KILLED: stopped before it finished (a signal, a killed launcher); `--resume` goes on
        "trials_stopped": float(len(records) - finished - failed),
        "configurations": float(len(rows)),
    }
    if len(objectives) > 1:
        named = ", ".join(f"{m} ({mode})" for m, mode in objectives)
        tags, front = front_values(rows, objectives)
        tags[BEST_BY] = f"the Pareto front of {named}, means over seeds"
        return tags, {**metrics, **front}
    metric, mode = objectives[0]
    tags = {BEST_BY: f"{metric} ({mode}, mean over seeds)"}
    best = best_row(rows, metric, mode)
    if best is not None:
        tags.update({BEST + key: best.settings.get(key, "-") for key in varying_settings(rows)})
        for name in reported_metrics():
            if best.mean(name) is not None:
                metrics.update(interval_metrics(BEST + name, best, name))
                metrics[f"{BEST}{name}_std"] = best.std(name)
        tags[BEST + "seeds"] = str(best.finished)
    return tags, metrics


def finished_run_ids(records: list[TrialRecord]) -> list[str]:
    """The run ids of the trials that finished: those whose histories a curve may draw."""
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
    objectives = search_objectives(study, None if study else study_document(uri, parent_run_id))
    tags, metrics = summary_values(records, rows, objectives)
    note = plan_note(study) if study else None
    with tempfile.TemporaryDirectory() as folder:
        written = (
            files
            if files is not None
            else write_report(
                rows,
                Path(folder),
                objectives=objectives,
                histories=metric_histories(uri, finished_run_ids(records)),
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
