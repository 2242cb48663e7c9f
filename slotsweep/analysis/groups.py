"""Trials grouped into configurations: every setting but the seed names a configuration, and
each configuration keeps its trials' values per seed, so that two configurations can be compared
seed by seed (trials with the same seed share their random values and their data order)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from slotsweep import registry
from slotsweep.config import inapplicable_to_method, runtime_keys
from slotsweep.train.result import TrialRecord


def reported_metrics() -> tuple[str, ...]:
    """The comparison's columns, then the final metrics only some trials log (finetuning's)."""
    return (*registry.metric_names(compared=True), *registry.metric_names("final", optional=True))


def not_configuration() -> frozenset[str]:
    """Params that do not name a configuration: the seed (rows are means over seeds), where or
    how fast a trial ran, and log2_k (derived from k)."""
    return frozenset({"seed", "log2_k", *runtime_keys()})


@dataclass
class ConfigurationRow:
    """One configuration (every setting but the seed) and its finished trials' values: `values`
    one per finished trial, `by_seed` per seed (the mean of a seed's trials where several
    launches ran it), `runs` the finished trials' run ids and seeds. `failed` counts FAILED
    runs; `stopped` the others that did not finish (KILLED: stopped with their launch, or still
    RUNNING)."""

    settings: dict[str, str]
    finished: int = 0
    failed: int = 0
    stopped: int = 0
    values: dict[str, list[float]] = field(default_factory=dict)
    by_seed: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)

    def mean(self, metric: str) -> float | None:
        values = self.values.get(metric, [])
        return statistics.fmean(values) if values else None

    def std(self, metric: str) -> float | None:
        values = self.values.get(metric, [])
        return statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)

    def seed_values(self, metric: str) -> dict[str, float]:
        """{seed: value} of a metric (a seed run more than once: the mean of its runs)."""
        return {
            seed: statistics.fmean(values) for seed, values in self.by_seed.get(metric, {}).items()
        }


def compare(records: list[TrialRecord]) -> list[ConfigurationRow]:
    """Groups trial runs by configuration, ordered by `order_rows` (not by finishing order)."""
    rows: dict[tuple, ConfigurationRow] = {}
    skipped, metrics = not_configuration(), reported_metrics()  # read once, not per record
    for record in records:
        settings = {k: v for k, v in sorted(record.params.items()) if k not in skipped}
        row = rows.setdefault(tuple(settings.items()), ConfigurationRow(settings))
        if record.status != "FINISHED":
            row.failed += record.status == "FAILED"
            row.stopped += record.status != "FAILED"
            continue
        row.finished += 1
        seed = record.params.get("seed", "")
        row.runs[record.run_id] = seed
        for metric in metrics:
            if metric in record.metrics:
                row.values.setdefault(metric, []).append(record.metrics[metric])
                row.by_seed.setdefault(metric, {}).setdefault(seed, []).append(
                    record.metrics[metric]
                )
    return order_rows(list(rows.values()))


# Slot machines first, then the peer method, then the weight-trained baselines.
METHOD_ORDER = {"slot": 0, "edge_popup": 1, "dense": 2}
# (metric, mode) a study is ranked by where it names none: the search section's default
OBJECTIVE = ("best_val_accuracy", "max")


def number(text: str) -> float | None:
    """A param's value as a number, None where it is not one."""
    try:
        return float(text)
    except ValueError:
        return None


def order_rows(rows: list[ConfigurationRow]) -> list[ConfigurationRow]:
    """Rows by method (baselines last), then by the varied keys: categorical ones (selection,
    sharing, ...) group the rows, numeric ones (K, epochs, lr) ascend within a group."""
    varied = [key for key in varying_settings(rows) if key != "method"]
    numeric = [
        key
        for key in varied
        if all(number(r.settings[key]) is not None for r in rows if key in r.settings)
    ]
    keys = [key for key in varied if key not in numeric] + numeric

    def sort_key(row: ConfigurationRow) -> tuple:
        values = []
        for key in keys:
            value = row.settings.get(key)
            # a key a row lacks (K of a dense row) sorts after every value of it
            values.append(
                (1, 0.0, "")
                if value is None
                else (0, number(value) or 0.0, "")
                if key in numeric
                else (0, 0.0, value)
            )
        return (METHOD_ORDER.get(row.settings.get("method", ""), 3), *values)

    return sorted(rows, key=sort_key)


def varying_settings(rows: list[ConfigurationRow]) -> list[str]:
    """Settings that differ between configurations (method always shown first)."""
    keys = sorted({key for row in rows for key in row.settings})
    methods = {row.settings.get("method", "slot") for row in rows}
    ignored = {method: inapplicable_to_method(method) for method in methods}
    # a baseline's placeholders for slot-only keys (k = 0, `n/a`) do not make a key vary
    present = {
        key: {
            row.settings[key]
            for row in rows
            if key in row.settings and key not in ignored[row.settings.get("method", "slot")]
        }
        for key in keys
    }
    varying = [key for key in keys if len(present[key]) > 1]
    return ["method"] + [key for key in varying if key != "method"]


def best_rows(
    rows: list[ConfigurationRow], objective: tuple[str, str], limit: int
) -> list[ConfigurationRow]:
    """At most `limit` rows, in the rows' order: all when there are no more, else the best by
    the mean of the objective (metric, mode); a row without the metric after every row with it."""
    if len(rows) <= limit:
        return list(rows)
    metric, mode = objective
    sign = -1.0 if mode == "max" else 1.0

    def rank(indexed: tuple[int, ConfigurationRow]) -> tuple:
        index, row = indexed
        mean = row.mean(metric)
        return (mean is None, 0.0 if mean is None else sign * mean, index)

    best = sorted(enumerate(rows), key=rank)[:limit]
    return [row for _, row in sorted(best, key=lambda indexed: indexed[0])]


def best_note(shown: int, total: int, objective: tuple[str, str]) -> str:
    """`the best 10 of 980 configurations by best_val_accuracy (max)`; "" when all are shown."""
    metric, mode = objective
    return (
        "" if shown >= total else f"the best {shown} of {total} configurations by {metric} ({mode})"
    )
