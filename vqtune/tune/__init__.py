"""The search layer: Ray Tune runs trials of the trainer, the Optuna study decides and records them."""

from vqtune.tune._export import export_config, trial_train_config
from vqtune.tune._runner import SearchResult, run_study
from vqtune.tune._storage import StorageError, mask, open_storage
from vqtune.tune._study import StudyError, load_existing, open_study
from vqtune.tune._tables import studies_table

__all__ = [
    "SearchResult",
    "StorageError",
    "StudyError",
    "export_config",
    "load_existing",
    "mask",
    "open_storage",
    "open_study",
    "run_study",
    "studies_table",
    "trial_train_config",
]
