"""The search layer: Ray Tune runs trials of the trainer, the Optuna study (:mod:`vqtune.study`) decides and
records them. Everything here needs Ray; what only reads a study lives in :mod:`vqtune.study`."""

from vqtune.tune._runner import SearchResult, TrialCallback, run_study, start_ray

__all__ = ["SearchResult", "TrialCallback", "run_study", "start_ray"]
