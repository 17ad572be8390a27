"""vqtune's own pruning rules, where Optuna's pruners would compare unlike quantities.

Two cases need them:

- a **two-stage** trial (the VQ-VAE, then a prior on its own codes, in one Optuna trial) reports
  ``val_bits_per_dim`` through both stages, but its stage-1 figure is the bound with the unigram prior, an upper
  end that a trained prior can only lower (its rate term lies between 0 and the unigram rate). Optuna's median
  pruner compares a trial's best value so far with other trials' values at the same step: a stage-1 figure then
  stands in for a stage-2 one, and a fine grid is condemned for code bits its prior would win back;
- a **multi-objective** study, for which Optuna has no pruner (and refuses ``Trial.report``).

So every epoch a trial records, under a key naming its stage and the epoch within that stage (``vqvae:3``,
``prior:2``: trials are compared only at the same key, whatever epochs each stage was given), each objective
as an interval ``[optimistic, pessimistic]`` (:func:`objective_bounds`: a point where the figure is final,
``[distortion, unigram bound]`` for stage-1 ``val_bits_per_dim`` of a trial that will train a prior) and the
interval of its constraint violation. A rule prunes a trial only when its optimistic end is worse than the
other trials' pessimistic ends: a decision no prior still to be trained could overturn.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Optional, Sequence

import numpy as np
import optuna
from optuna.trial import TrialState

from vqtune.config import PerplexityRule, SearchSpace
from vqtune.errors import ConfigError
from vqtune.study._attrs import BOUNDS_ATTR

BITS = "val_bits_per_dim"
DISTORTION = "val_distortion_bits_per_dim"  # its decoder term: the rate term is never below 0


class Judged(NamedTuple):
    """A trial at one stage epoch: each objective's ``[optimistic, pessimistic]`` interval, in the objective's
    own direction, and its summed constraint violation likewise (``<= 0``: feasible)."""

    bounds: list[list[float]]
    violation: list[float]

    def to_json(self) -> dict:
        return {"bounds": self.bounds, "violation": self.violation}

    @classmethod
    def from_json(cls, value: Mapping) -> "Judged":
        return cls([list(b) for b in value["bounds"]], list(value["violation"]))

    @classmethod
    def point(cls, values: Sequence[float], violation: float = 0.0) -> "Judged":
        """Final figures: each interval a point."""
        return cls([[float(v), float(v)] for v in values], [violation, violation])


def stage_key(stage: str, epoch: int, stage1_epochs: int) -> str:
    """The key a trial's epoch is compared at: its stage and the epoch's number within that stage (stage 2's
    epochs continue stage 1's numbering in the trial's series)."""
    return f"{stage}:{epoch - stage1_epochs if stage == 'prior' else epoch}"


def metric_bounds(name: str, metrics: Mapping[str, float], prior_to_come: bool) -> Optional[tuple[float, float]]:
    """``(optimistic, pessimistic)`` for a metric to minimize, or None when the epoch does not report it.

    ``prior_to_come``: the epoch is one of stage 1 and the trial trains a prior afterwards, so the rate term of
    its ``val_bits_per_dim`` (the unigram prior's) will be replaced by the prior's, which is never below 0."""
    value = metrics.get(name)
    if value is None:
        return None
    value = float(value)
    if name == BITS and prior_to_come and metrics.get(DISTORTION) is not None:
        return float(metrics[DISTORTION]), value
    return value, value


def objective_bounds(metrics: Mapping[str, float], goals: Sequence[tuple[str, float]],
                     constraints: Sequence, prior_to_come: bool) -> Optional[Judged]:
    """The epoch's :class:`Judged`, or None when it does not report every objective (stage 1 of a search
    judged by ``val_nll``). ``goals``: ``(metric, sign)`` with sign +1 to minimize, -1 to maximize; bounds are
    kept in the objective's direction, optimistic first. ``constraints``: :class:`~vqtune.config.Constraint`
    each; one whose metric this epoch does not report counts as met until it is."""
    bounds = []
    for name, sign in goals:
        interval = metric_bounds(name, metrics, prior_to_come)
        if interval is None:
            return None
        low, high = interval
        bounds.append([low, high] if sign > 0 else [high, low])  # maximize: the larger end is optimistic
    least = most = 0.0
    for constraint in constraints:
        interval = metric_bounds(constraint.metric, metrics, prior_to_come)
        if interval is None:
            continue
        ends = [violation_of(constraint, v) for v in interval]
        least += max(min(ends), 0.0)
        most += max(max(ends), 0.0)
    return Judged(bounds, [least, most])


def violation_of(constraint, value: float) -> float:
    """Optuna's constraint value for ``value`` (<= 0: feasible); a value that is not finite is a violation
    (an infinite one: a metric that came out NaN or infinite never makes a trial feasible)."""
    if not math.isfinite(value):
        return math.inf
    return constraint.violation(value)


def _keyword_options(cls, options: dict, names: str):
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
    stage, and takes its options; it never lets a stage-1 value stand in for a stage-2 one, nor compares two
    trials at different stages."""

    kind = "median"

    percentile = 50.0  # the median: the pruner's share of the other trials is half

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 0, interval_steps: int = 1, *,
                 n_min_trials: int = 1):
        if n_startup_trials < 0 or n_warmup_steps < 0 or interval_steps < 1 or n_min_trials < 1:
            raise ValueError("n_startup_trials >= 0, n_warmup_steps >= 0, interval_steps >= 1 and n_min_trials >= 1")
        self.n_startup_trials, self.n_warmup_steps = n_startup_trials, n_warmup_steps
        self.interval_steps, self.n_min_trials = interval_steps, n_min_trials

    @classmethod
    def from_options(cls, options: dict) -> "BoundsRule":
        return _keyword_options(cls, options, "n_startup_trials, n_warmup_steps, interval_steps, n_min_trials")

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
        return _keyword_options(cls, options, "n_startup_trials, n_warmup_steps, fraction")

    def should_prune(self, mine: Judged, others: Sequence[Judged], epoch: int, signs: Sequence[float]) -> bool:
        """``mine``: this trial at ``epoch``; ``others``: the other trials at the same stage epoch; ``signs``: +1
        for an objective to minimize, -1 to maximize."""
        if epoch <= self.n_warmup_steps or len(others) < self.n_startup_trials:
            return False
        dominating = sum(self.dominates(other, mine, signs) for other in others)
        return dominating >= self.fraction * len(others)

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


def pruning_rule(space: SearchSpace) -> BoundsRule | ParetoRule | None:
    """The rule of vqtune's that decides a search's pruning, or None where Optuna's pruner does
    (:func:`~vqtune.study.build_pruner`: one objective, one stage)."""
    if space.pruner.type == "pareto":
        return ParetoRule.from_options(space.pruner.options)
    if space.pruner.type == "median" and space.base.stages == ("vqvae", "prior"):
        return BoundsRule.from_options(space.pruner.options)
    return None


def rule_prunes(rule: BoundsRule | ParetoRule, study: optuna.Study, number: int, records: Mapping[str, Mapping],
                key: str, epoch: int, signs: Sequence[float]) -> bool:
    """Whether ``rule`` prunes trial ``number`` of ``study`` at stage epoch ``key`` (``epoch`` in its series),
    given the trial's ``records`` so far (its ``objective_bounds``: key -> :meth:`Judged.to_json`), against
    what the other trials recorded at ``key``: the COMPLETE ones for :class:`BoundsRule` (as Optuna's median
    pruner), every one that reached ``key`` for :class:`ParetoRule`."""
    def others(states) -> tuple[list[Judged], int]:
        trials = study.get_trials(deepcopy=False, states=states)
        return [Judged.from_json(t.user_attrs[BOUNDS_ATTR][key]) for t in trials
                if t.number != number and key in t.user_attrs.get(BOUNDS_ATTR, {})], len(trials)

    stage, at = key.split(":")
    if isinstance(rule, BoundsRule):
        mine = [Judged.from_json(value) for k, value in records.items()
                if k.split(":")[0] == stage and int(k.split(":")[1]) <= int(at)]
        complete, n_complete = others((TrialState.COMPLETE,))
        return rule.should_prune(mine, complete, epoch, n_complete, signs[0])
    reached, _ = others((TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
    return rule.should_prune(Judged.from_json(records[key]), reached, epoch, signs)


def codebook_collapsed(rule: PerplexityRule, epoch: int, last_epoch: int, metrics: Mapping[str, float],
                       codebook_size: int) -> bool:
    """The perplexity rule: at a stage-1 epoch after ``rule.warmup_epochs`` and before the trial's last
    (``last_epoch``: a trial that trained every epoch is finished, never pruned), the validation perplexity
    divided by the codebook size fell below ``rule.floor``."""
    if rule.floor <= 0 or epoch <= rule.warmup_epochs or epoch >= last_epoch or "val_perplexity" not in metrics:
        return False
    return metrics["val_perplexity"] / codebook_size < rule.floor
