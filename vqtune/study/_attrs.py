"""The names of the attributes vqtune records on a study and on its trials, in one place.

Optuna keys user attributes by string; every module that writes or reads one uses the name here, so a name
written by the search is the name the tables, the report and the dashboard read. Imports nothing: usable
without Ray, torch or Optuna.
"""

# A study's user attributes
SPACE_ATTR = "search_space"  # the search space the study searches, as JSON
SPACE_FILE_ATTR = "search_space_file"  # the file it came from (None: given as a dict or object)
VERSION_ATTR = "vqtune_version"  # the vqtune that last ran the study

# A trial's user attributes: what it ran
TRAIN_CONFIG_ATTR = "train_config"  # the trial's whole training config, as JSON: what export hands back
RUN_DIR_ATTR = "run_dir"  # its run directory, recorded before its first epoch (a restart resumes there)
RESTARTS_ATTR = "restarts"  # how many times Ray ran it again after its worker process died
RETRY_OF_ATTR = "retry_of"  # on a queued trial: the number of the trial whose parameters it runs again
EPOCHS_ATTR = "epochs"  # how many epochs it reported (its final metrics sit beside it under their own names)
# where it ran: its Ray trial, the device it trained on, the GPUs Ray gave it, its node (address, id), its process
WORKER_ATTRS = ("ray_trial_id", "device", "gpu_ids", "node", "node_id", "pid")

# A trial's user attributes: how it went
# A trial's every metric per epoch: {"epoch": [1, 2, ...], metric: [value or None, ...]} (6 significant digits;
# about 300 bytes an epoch, the whole series rewritten each epoch: 30 KB at 100 epochs).
SERIES_ATTR = "metric_series"
BOUNDS_ATTR = "objective_bounds"  # stage epoch ("vqvae:3") -> Judged, as JSON: what vqtune's own pruning compares
VECTORS_ATTR = "objective_vectors"  # a multi-objective trial's objectives per epoch
PRUNED_BY_ATTR = "pruned_by"  # which rule stopped a pruned trial
PRUNED_EPOCH_ATTR = "pruned_epoch"  # the epoch it was stopped at
FAIL_REASON_ATTR = "fail_reason"  # why a failed trial failed, and what became of its parameters
TRACEBACK_ATTR = "traceback"  # a failure that was not a VqtuneError: the end of its traceback
PRIOR_WARNING_ATTR = "prior_warning"  # its prior does worse than the unigram prior of its codes, in one line
ARTIFACT_ERROR_ATTR = "artifact_error"  # why its pictures are missing (a full disk, say); the trial stands

# Records, not figures: kept out of the trials table.
BULKY_ATTRS = (TRAIN_CONFIG_ATTR, TRACEBACK_ATTR, VECTORS_ATTR, BOUNDS_ATTR, SERIES_ATTR)
