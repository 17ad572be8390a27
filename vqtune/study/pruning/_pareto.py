"""The pareto rule (``pruner.type: pareto``) for multi-objective searches, for which Optuna has no pruner (and
refuses ``Trial.report``): a trial is pruned when enough trials at the same stage epoch surely dominate it."""

from __future__ import annotations

import inspect
from typing import Mapping, Sequence

import optuna
from optuna.trial import TrialState

from vqtune.config import SearchSpace, TrainConfig
from vqtune.study.pruning._bounds import keyword_options
from vqtune.study.pruning._optuna import longest, waiting_warnings
from vqtune.study.pruning._records import Judged, recorded


class ParetoRule:
    """Pruning for multi-objective searches: at an epoch after ``n_warmup_steps``, once ``n_startup_trials``
    other trials have reached the same stage epoch, a trial is pruned when at least ``fraction`` of those
    trials surely dominate it under constrained domination (:meth:`dominates`)."""

    kind = "pareto"

    def __init__(self, n_startup_trials: int = 4, n_warmup_steps: int = 1, fraction: float = 0.5):
        if n_startup_trials < 1 or n_warmup_steps < 0 or not 0 < fraction <= 1:
            raise ValueError("n_startup_trials >= 1, n_warmup_steps >= 0 and 0 < fraction <= 1")
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps
        self.fraction = fraction

    @classmethod
    def from_options(cls, options: dict) -> "ParetoRule":
        return keyword_options(cls, options, "n_startup_trials, n_warmup_steps, fraction")

    def should_prune(self, mine: Judged, others: Sequence[Judged], epoch: int, signs: Sequence[float]) -> bool:
        """``mine``: this trial at ``epoch``; ``others``: the other trials at the same stage epoch; ``signs``: +1
        for an objective to minimize, -1 to maximize."""
        if epoch <= self.n_warmup_steps or len(others) < self.n_startup_trials:
            return False
        dominating = sum(self.dominates(other, mine, signs) for other in others)
        return dominating >= self.fraction * len(others)

    def prunes(self, study: optuna.Study, number: int, records: Mapping[str, Mapping], key: str, epoch: int,
               signs: Sequence[float]) -> bool:
        """Whether trial ``number`` is pruned at stage epoch ``key``, given its ``records`` so far, against every
        other trial that reached ``key``."""
        reached, _ = recorded(study, number, key, (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
        return self.should_prune(Judged.from_json(records[key]), reached, epoch, signs)

    @staticmethod
    def dominates(other: Judged, mine: Judged, signs: Sequence[float]) -> bool:
        """Whether ``other`` constrained-dominates ``mine`` whatever their intervals turn out to be (Deb's rule,
        as Optuna's feasible front applies it): a feasible trial dominates an infeasible one; of two infeasible
        trials the one with the smaller violation dominates; of two feasible ones, the one no worse in every
        objective and better in one. ``other`` is taken at its pessimistic ends, ``mine`` at its optimistic."""
        other_violation, my_violation = other.violation[1], mine.violation[0]
        if my_violation > 0:
            return other_violation < my_violation
        if other_violation > 0:
            return False
        theirs = [s * b[1] for s, b in zip(signs, other.bounds)]
        ours = [s * b[0] for s, b in zip(signs, mine.bounds)]
        return all(t <= o for t, o in zip(theirs, ours)) and any(t < o for t, o in zip(theirs, ours))


class Pareto:
    """``pruner.type: pareto``: the study holds a NopPruner; :class:`ParetoRule` decides."""

    kind = "pareto"

    def rule(self, space: SearchSpace) -> ParetoRule:
        return ParetoRule.from_options(space.pruner.options)

    def optuna_pruner(self, space: SearchSpace) -> optuna.pruners.BasePruner:
        self.rule(space)  # refuses unknown options before anything runs
        return optuna.pruners.NopPruner()

    def warnings(self, space: SearchSpace, configs: Sequence[TrainConfig]) -> list[str]:
        options, defaults = space.pruner.options, inspect.signature(ParetoRule).parameters
        warmup = int(options.get("n_warmup_steps", defaults["n_warmup_steps"].default))
        startup = int(options.get("n_startup_trials", defaults["n_startup_trials"].default))
        # it prunes after its warm-up epochs, from the next one
        return waiting_warnings(self.kind, space, longest(configs), warmup, warmup + 1, startup)


PARETO = Pareto()
