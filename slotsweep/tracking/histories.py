"""Per-epoch metric histories of trial runs, for learning curves: MLflow's client pages through
each run's history (`get_metric_history` follows the store's page tokens), one query per run."""

from __future__ import annotations

from collections.abc import Iterable

from mlflow.tracking import MlflowClient

History = list[tuple[int, float]]  # (step = epoch, value), in step order


def metric_histories(
    uri: str, run_ids: Iterable[str], key: str = "val_accuracy"
) -> dict[str, History]:
    """{run id: [(epoch, value)]} of `key` for each run that logged it (a step logged twice,
    as by a resumed run, keeps its latest value)."""
    client = MlflowClient(uri)
    found = {}
    for run_id in run_ids:
        latest: dict[int, tuple[int, float]] = {}
        for metric in client.get_metric_history(run_id, key):
            if metric.step not in latest or metric.timestamp >= latest[metric.step][0]:
                latest[metric.step] = (metric.timestamp, metric.value)
        if latest:
            found[run_id] = [(step, latest[step][1]) for step in sorted(latest)]
    return found
