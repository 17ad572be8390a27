"""The rule of bounds for two-stage searches (``pruner.type: median`` when the trials train a VQ-VAE, then a
prior on its own codes, in one Optuna trial).

Such a trial reports ``val_bits_per_dim`` through both stages, but its stage-1 figure is the bound with the
unigram prior, an upper end that a trained prior can only lower (its rate term lies between 0 and the unigram
rate). Optuna's median pruner compares a trial's best value so far with other trials' values at the same step:
a stage-1 figure then stands in for a stage-2 one, and a fine grid is condemned for code bits its prior would
win back. The rule of bounds compares intervals (:mod:`._records`) instead, and prunes a trial only when its
optimistic end is worse than the other trials' pessimistic ends: a decision no prior still to be trained could
overturn.
"""

from __future__ import annotations

import inspect
from typing import Mapping, Sequence

import numpy as np
import optuna
from optuna.trial import TrialState

from vqtune.config import SearchSpace, TrainConfig
from vqtune.errors import ConfigError
from vqtune.study.pruning._optuna import MEDIAN
from vqtune.study.pruning._records import Judged, recorded

_MEDIAN = inspect.signature(optuna.pruners.MedianPruner).parameters  # the options it shares, and their defaults


def keyword_options(cls, options: dict, names: str):
    """``cls(**options)``; options it does not take are a ConfigError naming them and ``names``."""
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"pruner.options: {exc} (options of the {cls.kind} pruner: {names})") from None


class BoundsRule:
    """The median rule on intervals, for one objective: at a stage epoch ``key`` (after ``n_warmup_steps``,
    once ``n_startup_trials`` trials of the study are COMPLETE and ``n_min_trials`` of them reached ``key``), a
    trial is pruned when its best optimistic value in this stage so far is worse than the median of the
    COMPLETE trials' pessimistic values at ``key``.

    With point values (a one-stage search, every stage-2 epoch) it is Optuna's ``MedianPruner`` within one
    stage, and takes its options and their defaults; it never lets a stage-1 value stand in for a stage-2 one,
    nor compares two trials at different stages."""

    kind = "median"

    percentile = 50.0  # the median: the pruner's share of the other trials is half

    def __init__(self, n_startup_trials: int = _MEDIAN["n_startup_trials"].default,
                 n_warmup_steps: int = _MEDIAN["n_warmup_steps"].default,
                 interval_steps: int = _MEDIAN["interval_steps"].default, *,
                 n_min_trials: int = _MEDIAN["n_min_trials"].default):
        if n_startup_trials < 0 or n_warmup_steps < 0 or interval_steps < 1 or n_min_trials < 1:
            raise ValueError("n_startup_trials >= 0, n_warmup_steps >= 0, interval_steps >= 1 and n_min_trials >= 1")
        self.n_startup_trials, self.n_warmup_steps = n_startup_trials, n_warmup_steps
        self.interval_steps, self.n_min_trials = interval_steps, n_min_trials

    @classmethod
    def from_options(cls, options: dict) -> "BoundsRule":
        return keyword_options(cls, options, "n_startup_trials, n_warmup_steps, interval_steps, n_min_trials")

    def should_prune(self, mine: Sequence[Judged], others: Sequence[Judged], epoch: int, complete: int,
                     sign: float) -> bool:
        """``mine``: this trial's epochs of the current stage so far, the current one last; ``others``: the
        COMPLETE trials' at the same stage epoch; ``complete``: how many trials of the study are COMPLETE;
        ``sign``: +1 to minimize, -1 to maximize; ``epoch``: the epoch's number in the trial's series."""
        if complete == 0 or complete < self.n_startup_trials or epoch < self.n_warmup_steps:
            return False
        if (epoch - self.n_warmup_steps) % self.interval_steps or len(others) < self.n_min_trials:
            return False
        best = min(sign * j.bounds[0][0] for j in mine)  # the most optimistic value of this stage so far
        threshold = float(np.percentile([sign * o.bounds[0][1] for o in others], self.percentile))
        return best > threshold

    def prunes(self, study: optuna.Study, number: int, records: Mapping[str, Mapping], key: str, epoch: int,
               signs: Sequence[float]) -> bool:
        """Whether trial ``number`` is pruned at stage epoch ``key``, given its ``records`` so far, against the
        COMPLETE trials' records at ``key`` (as Optuna's median pruner)."""
        stage, at = key.split(":")
        mine = [Judged.from_json(value) for k, value in records.items()
                if k.split(":")[0] == stage and int(k.split(":")[1]) <= int(at)]
        complete, n_complete = recorded(study, number, key, (TrialState.COMPLETE,))
        return self.should_prune(mine, complete, epoch, n_complete, signs[0])


class Median:
    """``pruner.type: median``: Optuna's median pruner on a one-stage search, the rule of bounds with the same
    options on a two-stage one (where the study holds a NopPruner)."""

    kind = "median"

    def rule(self, space: SearchSpace) -> BoundsRule | None:
        if space.base.stages == ("vqvae", "prior"):
            return BoundsRule.from_options(space.pruner.options)
        return None

    def optuna_pruner(self, space: SearchSpace) -> optuna.pruners.BasePruner:
        if self.rule(space) is not None:  # refuses unknown options before anything runs
            return optuna.pruners.NopPruner()
        return MEDIAN.optuna_pruner(space)

    def warnings(self, space: SearchSpace, configs: Sequence[TrainConfig]) -> list[str]:
        return MEDIAN.warnings(space, configs)  # the same options, the same defaults, the same epochs


MEDIAN_OF_BOUNDS = Median()
