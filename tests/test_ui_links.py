"""The parent run's summary and the UI links, on a real SQLite store (no Ray, no training)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from helpers import wait_until
from mlflow.tracking import MlflowClient
from scipy import stats

from slotsweep.config import TrialConfig
from slotsweep.study.schema import Study
from slotsweep.study.store import absolute_tracking_uri
from slotsweep.tracking.links import SHARED_VIEW_TAG, study_links
from slotsweep.tracking.queries import study_coordinates
from slotsweep.tracking.runs import MlflowTrialRun as TrialRun
from slotsweep.tracking.runs import StudyRun
from slotsweep.tracking.summary import summarize_study
from slotsweep.train.result import TrialResult


def _result(config: TrialConfig, val: float, test: float) -> TrialResult:
    return TrialResult(
        test_accuracy=test,
        best_val_accuracy=val,
        best_epoch=1,
        training_cost_flops=1e9,
        memory_state_bytes=10,
        peak_memory_bytes=20,
        model_size_bytes=5,
        train_time_s=1.0,
        params=config.model_dump(),
        training_memory_bytes=7,
    )


def _launch(tmp_path):
    uri = absolute_tracking_uri(f"sqlite:///{tmp_path / 'store.db'}")
    parent = StudyRun.start(uri, "exp", "exp", "", resume=False)
    outcomes = [
        (TrialConfig(k=2, seed=0), 0.80, 0.79),
        (TrialConfig(k=2, seed=1), 0.84, 0.83),
        (TrialConfig(k=8, seed=0), 0.90, 0.88),
        (TrialConfig(method="dense"), 0.85, 0.9),
    ]
    for i, (config, val, test) in enumerate(outcomes):
        run = TrialRun.open(
            uri,
            parent.experiment_id,
            config.resolved(),
            trial_key=f"key{i}",
            trial_id=f"t{i}",
            parent_run_id=parent.run_id,
        )
        run.finish(_result(config, val, test))
    failed = TrialRun.open(
        uri,
        parent.experiment_id,
        TrialConfig(k=4).resolved(),
        trial_key="bad",
        trial_id="t9",
        parent_run_id=parent.run_id,
    )
    failed.fail(RuntimeError("boom"))
    parent.finish("FINISHED")
    return uri, parent


def test_the_parent_run_summarises_the_study(tmp_path):
    uri, parent = _launch(tmp_path)
    study = Study.model_validate(
        {
            "name": "exp",
            "description": "K against accuracy",
            "space": {"k": {"grid": [2, 4, 8]}},
            "seeds": [0, 1],
        }
    )
    summarize_study(uri, "exp", parent.run_id, study)
    client = MlflowClient(uri)
    run = client.get_run(parent.run_id)
    # best by the study's objective (best_val_accuracy, max, mean over seeds): K=8 at 0.90
    assert run.data.tags["best.k"] == "8" and run.data.tags["best.method"] == "slot"
    assert run.data.metrics["best.test_accuracy"] == 0.88
    assert run.data.metrics["trials_finished"] == 4 and run.data.metrics["trials_failed"] == 1
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("K against accuracy") and "k" in note and "grid" in note
    table_path = client.download_artifacts(parent.run_id, "comparison_table.json", str(tmp_path))
    table = json.loads(open(table_path).read())
    column = {name: [row[i] for row in table["data"]] for i, name in enumerate(table["columns"])}
    assert sorted(zip(column["method"], column["k"], strict=True)) == [
        ("dense", "0"),
        ("slot", "2"),
        ("slot", "4"),
        ("slot", "8"),
    ]
    means = dict(zip(column["k"], column["test_accuracy_mean"], strict=True))
    assert abs(means["2"] - (0.79 + 0.83) / 2) < 1e-12
    # the 95% t-interval columns, against scipy's (two seeds: one degree of freedom)
    low, high = stats.t.interval(0.95, 1, loc=0.81, scale=stats.sem([0.79, 0.83]))
    bounds = zip(column["test_accuracy_ci_low"], column["test_accuracy_ci_high"], strict=True)
    k2_low, k2_high = dict(zip(column["k"], bounds, strict=True))["2"]
    assert abs(k2_low - low) < 1e-9 and abs(k2_high - high) < 1e-9  # the JSON keeps 10 digits
    assert "accuracy_vs_k.png" in {a.path for a in client.list_artifacts(parent.run_id)}
    summarize_study(uri, "exp", parent.run_id, study)  # a refresh replaces the table
    table = json.loads(
        open(
            client.download_artifacts(
                parent.run_id, "comparison_table.json", str(tmp_path / "again")
            )
        ).read()
    )
    assert len(table["data"]) == 4


def test_links_name_the_latest_launch_and_its_view(tmp_path):
    uri, parent = _launch(tmp_path)
    coords = study_coordinates(uri, "exp")
    assert coords.parent_run_id == parent.run_id and len(coords.trials) == 5
    links = study_links("http://127.0.0.1:5000", coords)
    assert links.runs.startswith(f"http://127.0.0.1:5000/#/experiments/{coords.experiment_id}/")
    query = parse_qs(urlsplit(links.runs.replace("/#/", "/")).query)
    assert query["viewStateShareKey"] == [links.share_key]
    assert query["workflowType"] == ["machine_learning"]
    assert not {"searchFilter", "orderByKey"} & set(query)  # they would void the shared view
    state = links.view_state
    assert state["searchFilter"] == f"tags.`mlflow.parentRunId` = '{parent.run_id}'"
    assert {"params.`k`", "params.`log2_k`", "metrics.`test_accuracy`"} <= set(
        state["selectedColumns"]
    )
    compare = parse_qs(urlsplit(links.compare.replace("/#/", "/")).query)
    assert sorted(json.loads(compare["runs"][0])) == sorted(t.run_id for t in coords.trials)
    assert json.loads(compare["experiments"][0]) == [coords.experiment_id]
    assert links.summary.endswith(f"/runs/{parent.run_id}?workflowType=machine_learning")
    assert SHARED_VIEW_TAG == "mlflow.sharedViewState."
    assert links.varied[:2] == ["method", "k"]


def test_a_trial_logs_system_metrics_its_data_and_its_network(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")  # MLflow's own knob
    uri = absolute_tracking_uri(f"sqlite:///{tmp_path / 'store.db'}")
    parent = StudyRun.start(uri, "exp", "exp", "", resume=False)
    config = TrialConfig(k=4).resolved()
    run = TrialRun.open(
        uri, parent.experiment_id, config, trial_key="k", trial_id="t", parent_run_id=parent.run_id
    )
    client = MlflowClient(uri)
    wait_until(  # the monitor's first sample (it logs each one as it is taken)
        lambda: client.get_metric_history(run.run_id, "system/cpu_utilization_percentage"),
        timeout=120,
        what="the system-metrics monitor's first sample in the run",
        every=0.2,
    )
    result = _result(config, 0.5, 0.5)
    result.datasets = [
        {
            "name": "synthetic-test",
            "split": "test",
            "examples": 500,
            "shape": [1, 28, 28],
            "num_classes": 10,
            "digest": "ab" * 32,
        }
    ]
    result.ticket = b"\x01\x02\x03"
    run.finish(result)
    logged = client.get_run(run.run_id)
    assert "system/cpu_utilization_percentage" in logged.data.metrics
    assert "system/system_memory_usage_megabytes" in logged.data.metrics
    (data,) = logged.inputs.dataset_inputs
    assert (data.dataset.name, data.dataset.digest) == ("synthetic-test", "ab" * 8)
    assert json.loads(data.dataset.profile)["examples"] == 500
    assert {t.key: t.value for t in data.tags}["mlflow.data.context"] == "test"
    assert logged.data.tags["slotsweep.network"] == "network/ticket.bin"
    path = client.download_artifacts(run.run_id, "network/ticket.bin", str(tmp_path))
    assert open(path, "rb").read() == b"\x01\x02\x03"
