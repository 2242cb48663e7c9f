"""Per-epoch metric histories of trial runs, for learning curves, read on demand: a report draws
the curves of a few configurations (`analysis.curves`), so of a 1,000-trial search it reads a
few runs' histories, not one query per run of all 1,000. MLflow's client pages through a run's
history (`get_metric_history` follows the store's page tokens). The store's bulk history
endpoints are the UI's (`ajax-api`), not the client's: not used."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from mlflow.tracking import MlflowClient

from slotsweep.analysis.curves import History  # (step = epoch, value), here in step order


class RunHistories(Mapping[str, History]):
    """{run id: [(epoch, value)]} of one metric for the runs given that logged it; a run's
    history is read from the store the first time it is looked up, then kept. Iterating (or
    `len`) reads every run's history: look runs up by id instead."""

    def __init__(self, uri: str, run_ids: Iterable[str], key: str = "val_accuracy") -> None:
        self._client, self._key = MlflowClient(uri), key
        self._ids = dict.fromkeys(run_ids)  # ordered, no repeats, O(1) lookup
        self._read: dict[str, History] = {}
        self.queries = 0  # runs read from the store so far

    def _history(self, run_id: str) -> History:
        if run_id not in self._read:
            latest: dict[int, tuple[int, float]] = {}
            for metric in self._client.get_metric_history(run_id, self._key):
                # a step logged twice, as by a resumed run, keeps its latest value
                if metric.step not in latest or metric.timestamp >= latest[metric.step][0]:
                    latest[metric.step] = (metric.timestamp, metric.value)
            self._read[run_id] = [(step, latest[step][1]) for step in sorted(latest)]
            self.queries += 1
        return self._read[run_id]

    def __getitem__(self, run_id: str) -> History:
        if run_id not in self._ids or not self._history(run_id):
            raise KeyError(run_id)
        return self._read[run_id]

    def __iter__(self) -> Iterator[str]:
        return (run_id for run_id in self._ids if self._history(run_id))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def metric_histories(uri: str, run_ids: Iterable[str], key: str = "val_accuracy") -> RunHistories:
    """{run id: [(epoch, value)]} of `key` for each of the runs that logged it, each run's read
    when first looked up (`RunHistories`)."""
    return RunHistories(uri, run_ids, key)
