"""Every tag name slotsweep sets in MLflow, declared once (as MLflow keeps its own in
`mlflow.utils.mlflow_tags`)."""

from __future__ import annotations

# --- who a run is ---
ROLE = "slotsweep.role"  # `study` (the parent run of a launch) or `trial`
STUDY = "slotsweep.study"  # the study's name
TRIAL_ID = "slotsweep.trial_id"  # Tune's trial id (`local` for `slotsweep train`)
TRIAL_KEY = "slotsweep.trial_key"  # the hash of the trial's resolved settings (`trial_key`)
PHASE = "slotsweep.phase"  # `fixed` or `search` (an Optuna trial, fed back on --resume)
VERSION = "slotsweep.version"
PLAN_SHA256 = "slotsweep.plan_sha256"  # parent run: digest of the study as launched
# a trial run of an earlier plan, altered by `--resume --allow-changes` (kept apart, not resumed)
SUPERSEDED = "slotsweep.superseded"

# --- how a trial ended and what it left ---
ERROR = "slotsweep.error"  # the one-line reason of a failed or stopped trial
CHECKPOINT = "slotsweep.checkpoint"  # where the trial's latest checkpoint lies (Tune storage)
RESUMED_FROM_EPOCHS = "slotsweep.resumed_from_epochs"  # a restored trial went on from there
# a restore passed over a damaged checkpoint: which file, why, and what it went on from
CHECKPOINT_DAMAGED = "slotsweep.checkpoint_damaged"
IMPL = "slotsweep.impl"  # which update ran: fused-native-prebuilt, ..., reference
DEVICE = "slotsweep.device"
SELECTION_SHA256 = "slotsweep.selection_sha256"  # slot runs: the selected indices' hash
NETWORK_DIR, NETWORK_TAG = "network", "slotsweep.network"  # the trained network's artifact

# --- where a trial ran (set by the Ray worker) ---
HOST, NODE_IP, NODE_ID, PID = (
    "slotsweep.host",
    "slotsweep.node_ip",
    "slotsweep.node_id",
    "slotsweep.pid",
)
GPU_IDS, GPU_NAMES = "slotsweep.gpu_ids", "slotsweep.gpu_names"

# --- the parent run as the study's summary ---
BEST = "best."  # prefix of the best configuration's tags (settings) and metrics (mean over seeds)
BEST_BY = "slotsweep.best_by"
SHARED_VIEW = "mlflow.sharedViewState."  # experiment tags: the UI's shared view states (`ui`)

# --- MLflow's own ---
NOTE = "mlflow.note.content"  # a run's description, shown as markdown
# MLflow 3 shows an experiment without this tag as a GenAI one (traces, not runs)
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
