"""The search layer: Ray Tune runs trials of the trainer, the Optuna study (:mod:`vqtune.study`) decides and
records them. What a search will do before it runs (:func:`dry_run`, :func:`search_warnings`) needs no Ray; the
runner (:func:`run_study` and the rest) imports Ray, and is imported only when one of its names is first used."""

import os

# Ray holds back a line of its own that repeats an earlier one, and prints it to stdout when the session ends:
# after what the command printed (vqtune run --format json's one document). Ray reads this when it is imported.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from vqtune.tune._plan import dry_run, search_warnings  # noqa: E402  (no Ray)

_RUNNER = ("SearchResult", "TrialCallback", "run_study", "start_ray")

__all__ = ["dry_run", "search_warnings", *_RUNNER]


def __getattr__(name: str):
    if name in _RUNNER:  # the runner imports Ray: only when it is first asked for
        from vqtune.tune import _runner

        return getattr(_runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
