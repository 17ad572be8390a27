"""Studies without Ray: storages, opening and loading studies, stale trials, export, tables, artifacts.

Everything that only reads a study (``vqtune studies``, ``trials``, ``export``, ``report``, ``dashboard``)
needs this package and Optuna, never Ray; ``vqtune.tune`` builds the search on it. The names of the attributes a
study and its trials carry (``FAIL_REASON_ATTR`` and the rest) are here too, for every layer to use.
"""

from vqtune.study._artifacts import ArtifactStore, artifact_store, default_artifact_dir
from vqtune.study._attrs import (
    ARTIFACT_ERROR_ATTR,
    BOUNDS_ATTR,
    BULKY_ATTRS,
    EPOCHS_ATTR,
    FAIL_REASON_ATTR,
    PRIOR_WARNING_ATTR,
    PRUNED_BY_ATTR,
    PRUNED_EPOCH_ATTR,
    RESTARTS_ATTR,
    RETRY_OF_ATTR,
    RUN_DIR_ATTR,
    SERIES_ATTR,
    SPACE_ATTR,
    SPACE_FILE_ATTR,
    TRACEBACK_ATTR,
    TRAIN_CONFIG_ATTR,
    VECTORS_ATTR,
    VERSION_ATTR,
)
from vqtune.study._delete import Deletion, plan_deletion, trial_root
from vqtune.study._export import export_config, trial_train_config
from vqtune.study._pruning import (
    BoundsRule,
    Judged,
    ParetoRule,
    codebook_collapsed,
    objective_bounds,
    pruning_rule,
    rule_prunes,
    stage_key,
    violation_of,
)
from vqtune.study._sampling import build_pruner, build_sampler, grid_of, grid_points
from vqtune.study._storage import check_storage, is_sqlite, mask, open_storage, requeue_once, requeue_outcome
from vqtune.study._study import (
    FINISHED_STATES,
    best_trial,
    best_trials,
    check_search,
    count_states,
    fail_stale_trials,
    goal_metrics,
    live_trials,
    load_existing,
    open_study,
)
from vqtune.study._suggest import enabled, suggest
from vqtune.study._tables import studies_table, trials_frame
from vqtune.study._unfinished import unfinished_params

__all__ = [
    "ARTIFACT_ERROR_ATTR",
    "ArtifactStore",
    "BOUNDS_ATTR",
    "BULKY_ATTRS",
    "EPOCHS_ATTR",
    "FAIL_REASON_ATTR",
    "PRIOR_WARNING_ATTR",
    "PRUNED_BY_ATTR",
    "PRUNED_EPOCH_ATTR",
    "RESTARTS_ATTR",
    "RETRY_OF_ATTR",
    "RUN_DIR_ATTR",
    "SPACE_FILE_ATTR",
    "TRACEBACK_ATTR",
    "TRAIN_CONFIG_ATTR",
    "VECTORS_ATTR",
    "VERSION_ATTR",
    "BoundsRule",
    "Judged",
    "Deletion",
    "ParetoRule",
    "enabled",
    "FINISHED_STATES",
    "SERIES_ATTR",
    "SPACE_ATTR",
    "artifact_store",
    "best_trial",
    "best_trials",
    "build_pruner",
    "build_sampler",
    "check_search",
    "check_storage",
    "codebook_collapsed",
    "count_states",
    "default_artifact_dir",
    "export_config",
    "fail_stale_trials",
    "goal_metrics",
    "grid_of",
    "grid_points",
    "is_sqlite",
    "live_trials",
    "load_existing",
    "mask",
    "objective_bounds",
    "open_storage",
    "open_study",
    "plan_deletion",
    "pruning_rule",
    "requeue_once",
    "requeue_outcome",
    "rule_prunes",
    "stage_key",
    "studies_table",
    "suggest",
    "trial_root",
    "trial_train_config",
    "trials_frame",
    "unfinished_params",
    "violation_of",
]
