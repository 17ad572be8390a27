"""What vqtune's own rules compare: each trial's objectives per stage epoch, as intervals.

Every epoch a trial records, under a key naming its stage and the epoch within that stage (``vqvae:3``,
``prior:2``: trials are compared only at the same key, whatever epochs each stage was given), each objective
as an interval ``[optimistic, pessimistic]`` (:func:`objective_bounds`: a point where the figure is final,
``[distortion, unigram bound]`` for stage-1 ``val_bits_per_dim`` of a trial that will train a prior) and the
interval of its constraint violation, in the user attribute ``objective_bounds``.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Optional, Sequence

import optuna

from vqtune.study._attrs import BOUNDS_ATTR  # stage epoch ("vqvae:3") -> Judged, as JSON

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


def recorded(study: optuna.Study, number: int, key: str, states) -> tuple[list[Judged], int]:
    """What the trials of ``study`` in ``states`` other than trial ``number`` recorded at stage epoch ``key``,
    and how many trials are in ``states``."""
    trials = study.get_trials(deepcopy=False, states=states)
    return [Judged.from_json(t.user_attrs[BOUNDS_ATTR][key]) for t in trials
            if t.number != number and key in t.user_attrs.get(BOUNDS_ATTR, {})], len(trials)
