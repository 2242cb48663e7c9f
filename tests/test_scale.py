"""A study of a thousand trials as MLflow holds it: every query pages, the links stay short."""

import json
from urllib.parse import parse_qs, urlsplit

from mlflow.tracking import MlflowClient

from slotsweep.tracking import store
from slotsweep.tracking.links import COMPARED_BY, COMPARED_RUNS, study_links
from slotsweep.tracking.queries import StudyCoordinates, trial_records
from slotsweep.train.result import TrialRecord


def test_a_query_reads_every_page(tmp_path, monkeypatch):
    """Twenty trial runs read seven at a time: all twenty, oldest first, none twice."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("paged")
    made = [
        client.create_run(exp, start_time=1000 + i, tags={"slotsweep.role": "trial"}).info.run_id
        for i in range(20)
    ]
    monkeypatch.setattr(store, "PAGE_SIZE", 7)
    assert [record.run_id for record in trial_records(uri, "paged")] == made


def test_the_compare_link_names_the_best_trials_of_a_thousand():
    """1,000 trials (a tenth failed, without metrics): the compare link names the best
    COMPARED_RUNS by COMPARED_BY, best first, in a URL of under 2 KB."""
    trials = [
        TrialRecord(
            f"{i:032x}",
            "FAILED" if i % 10 == 0 else "FINISHED",
            {"method": "slot", "k": str(1 + i % 16)},
            {} if i % 10 == 0 else {COMPARED_BY: ((i * 7919) % 1000) / 1000},
            None,
        )
        for i in range(1000)
    ]
    links = study_links("http://127.0.0.1:5000", StudyCoordinates("1", "parent", trials))
    query = parse_qs(urlsplit(links.compare.replace("/#/", "/")).query)
    named = json.loads(query["runs"][0])
    ranked = sorted(
        (t for t in trials if t.metrics), key=lambda t: t.metrics[COMPARED_BY], reverse=True
    )
    assert named == [t.run_id for t in ranked[:COMPARED_RUNS]]
    assert links.compared == COMPARED_RUNS == 20
    assert len(links.compare) < 2048
