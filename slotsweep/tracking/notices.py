"""What a launch's end says about faults its trials met and survived (from their runs' tags)."""

from __future__ import annotations

from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from slotsweep.tracking.store import find_runs
from slotsweep.tracking.tags import CHECKPOINT_DAMAGED


def fault_notices(uri: str, experiment: str, parent_run_id: str) -> list[str]:
    """One line per trial of the parent run that passed over a damaged checkpoint."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = find_runs(
        client, found.experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'"
    )
    return [
        f"trial {run.data.tags.get(MLFLOW_RUN_NAME, run.info.run_id)}: "
        f"{run.data.tags[CHECKPOINT_DAMAGED]}"
        for run in reversed(runs)
        if CHECKPOINT_DAMAGED in run.data.tags
    ]
