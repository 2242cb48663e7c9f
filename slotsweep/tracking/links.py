"""Links into MLflow's UI (3.17) that open on a study's latest launch: its trials, its comparison.

MLflow's runs page reads its filter, sort order and columns from a *shared view state*: a JSON
object in the experiment tag `mlflow.sharedViewState.<key>`, named in the URL by
`viewStateShareKey=<key>` (the "Share" button of the runs page makes the same). The URL's own
`searchFilter`, `orderByKey`, `orderByAsc`, ... are honoured too, but when any of them is present
the shared state (and so the column choice) is ignored, so the runs link carries the key only.
`workflowType=machine_learning` picks the UI's model-training view: MLflow 3.17 decides GenAI or
model training by that parameter (else by the browser's last choice, GenAI at first), not by the
experiment's `mlflow.experimentKind` tag, which slotsweep sets as well.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from urllib.parse import quote

from slotsweep.analysis import compare, varying_settings
from slotsweep.tracking import tags
from slotsweep.tracking.queries import StudyCoordinates
from slotsweep.train.result import TrialRecord

SHARED_VIEW_TAG = tags.SHARED_VIEW
WORKFLOW = "workflowType=machine_learning"
# the metrics worth a column when methods are compared (order kept in the table)
COLUMN_METRICS = (
    "test_accuracy",
    "best_val_accuracy",
    "training_memory_bytes",
    "model_size_bytes",
    "training_cost_flops",
    "train_time_s",
)
# MLflow's compare view draws every run it is given, and the URL names each (35 characters a
# run): it stays quick and the URL short with the best few, not a thousand
COMPARED_RUNS = 20
COMPARED_BY = "test_accuracy"  # the order of the runs link's table


@dataclass(frozen=True)
class UiLinks:
    """The printed links and the view state the runs link needs in the store."""

    runs: str
    compare: str | None
    summary: str | None  # the parent run's page: best configuration, table, figures, plan
    share_key: str
    view_state: dict[str, object]
    varied: list[str]
    compared: int = 0  # how many trials the compare link names: the best by COMPARED_BY


def _column(kind: str, key: str) -> str:
    """A runs-table column as the UI names it: params.`k`, metrics.`test_accuracy`."""
    return f"{kind}.`{key}`"


def view_state(parent_run_id: str | None, varied: list[str]) -> dict[str, object]:
    """The runs page filtered to one launch's trials, best test accuracy first, the varied
    settings and the comparing metrics as columns, every trial drawn in the charts."""
    params = list(dict.fromkeys([*varied, *(["log2_k"] if "k" in varied else [])]))
    search = f"tags.`mlflow.parentRunId` = '{parent_run_id}'" if parent_run_id else ""
    return {
        "searchFilter": search,
        "orderByKey": _column("metrics", COMPARED_BY),
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "modelVersionFilter": "All Runs",
        "datasetsFilter": [],
        "selectedColumns": [_column("params", key) for key in params]
        + [_column("metrics", key) for key in COLUMN_METRICS],
        "runsHiddenMode": "SHOW_ALL",
    }


def share_key(state: dict[str, object]) -> str:
    """A key that names one view state (the same state, the same key)."""
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:24]


def _json_query(values: list[str]) -> str:
    """A JSON list as one URL query value (the compare page parses its parameters as JSON)."""
    return quote(json.dumps(values, separators=(",", ":")))


def study_links(base_url: str, coords: StudyCoordinates) -> UiLinks:
    """The runs link (trials of the latest launch), the compare link (its best COMPARED_RUNS
    trials by COMPARED_BY) and the parent run's page."""
    base = base_url.rstrip("/")
    varied = varying_settings(compare(coords.trials)) if coords.trials else ["method"]
    state = view_state(coords.parent_run_id, varied)
    key = share_key(state)
    runs = f"{base}/#/experiments/{coords.experiment_id}/runs?viewStateShareKey={key}&{WORKFLOW}"
    ids = [trial.run_id for trial in best_trials(coords.trials, COMPARED_RUNS)]
    compare_link = None
    if ids:
        compare_link = (
            f"{base}/#/compare-runs?runs={_json_query(ids)}"
            f"&experiments={_json_query([coords.experiment_id])}&{WORKFLOW}"
        )
    summary = None
    if coords.parent_run_id:
        summary = (
            f"{base}/#/experiments/{coords.experiment_id}/runs/{coords.parent_run_id}?{WORKFLOW}"
        )
    return UiLinks(runs, compare_link, summary, key, state, varied, len(ids))


def best_trials(trials: list[TrialRecord], count: int) -> list[TrialRecord]:
    """The `count` trials highest in COMPARED_BY (trials without it last), best first."""
    ranked = sorted(trials, key=lambda t: -t.metrics.get(COMPARED_BY, float("-inf")))
    return ranked[:count]
