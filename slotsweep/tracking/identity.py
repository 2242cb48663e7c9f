"""The study as launched, recorded in its parent run (`study_plan.json`, tag
`slotsweep.plan_sha256`), and compared on `--resume` with the study as it is now."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from slotsweep.study.identity import plan_changes, study_plan
from slotsweep.study.schema import Study
from slotsweep.tracking.store import find_runs
from slotsweep.tracking.tags import PHASE, PLAN_SHA256, ROLE, STUDY, SUPERSEDED, TRIAL_KEY

PLAN_FILE = "study_plan.json"


def record_plan(client: MlflowClient, run_id: str, plan: dict[str, Any]) -> None:
    """The plan and its digest on the parent run (a resumed launch records its own)."""
    client.log_dict(run_id, plan, PLAN_FILE)
    client.set_tag(run_id, PLAN_SHA256, plan["digest"])


def _latest_parent(client: MlflowClient, study: Study) -> Run | None:
    experiment = client.get_experiment_by_name(study.experiment_name)
    if experiment is None:
        return None
    runs = find_runs(
        client,
        experiment.experiment_id,
        f"tags.`{ROLE}` = 'study' and tags.`{STUDY}` = '{study.name}'",
    )
    return runs[0] if runs else None


def _recorded(client: MlflowClient, run_id: str) -> dict[str, Any] | None:
    """The plan a launch recorded; for a parent from before plans were recorded, the plan of
    the study it recorded (`study.json`); None when neither can be read."""
    with tempfile.TemporaryDirectory() as folder:
        for name in (PLAN_FILE, "study.json"):
            try:
                text = Path(client.download_artifacts(run_id, name, folder)).read_text()
            except (MlflowException, OSError):
                continue
            value = json.loads(text)
            return value if name == PLAN_FILE else study_plan(Study.model_validate(value))
    return None


def resume_changes(uri: str, study: Study, allow: bool) -> list[str]:
    """Each change of `study` since its latest launch that alters a trial already run, one
    line naming the key; [] when none does, or with `allow` (the altered trials' runs are then
    tagged superseded, and their settings run again as new trials)."""
    client = MlflowClient(uri)
    parent = _latest_parent(client, study)
    recorded = _recorded(client, parent.info.run_id) if parent is not None else None
    if recorded is None:
        return []
    plan = study_plan(study)
    children = find_runs(
        client, parent.info.experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'"
    )
    children = [run for run in children if SUPERSEDED not in run.data.tags]
    ran = {run.data.tags.get(TRIAL_KEY, "") for run in children}
    searched = any(run.data.tags.get(PHASE) == "search" for run in children)
    changes = plan_changes(recorded, plan, ran, searched)
    if changes and allow:
        note = f"the study changed on --resume --allow-changes: {'; '.join(changes)}"[:5000]
        for run in children:
            key = run.data.tags.get(TRIAL_KEY, "")
            if (key not in plan["trials"] and run.data.tags.get(PHASE) != "search") or searched:
                client.set_tag(run.info.run_id, SUPERSEDED, note)
        return []
    return changes
