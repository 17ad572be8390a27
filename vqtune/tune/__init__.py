"""The search layer: Ray Tune runs trials of the trainer, the Optuna study (:mod:`vqtune.study`) decides and
records them. Everything here needs Ray; what only reads a study lives in :mod:`vqtune.study`."""

import os

# Ray holds back a line of its own that repeats an earlier one, and prints it to stdout when the session ends:
# after what the command printed (vqtune run --format json's one document). Ray reads this when it is imported.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from vqtune.tune._runner import SearchResult, TrialCallback, run_study, start_ray  # noqa: E402  (imports Ray)

__all__ = ["SearchResult", "TrialCallback", "run_study", "start_ray"]
