"""Pruning rules: each kind in its own module, with its decision and its warnings for the dry run.

- ``_optuna.py``: Optuna's pruners (median, hyperband, successive_halving, none) on a one-stage, one-objective
  search: the study holds the pruner;
- ``_bounds.py``: the rule of bounds, ``median`` on a two-stage search (a stage-1 value is an upper bound of
  what its prior makes of it);
- ``_pareto.py``: the pareto rule for multi-objective searches;
- ``_perplexity.py``: the perplexity rule, which prunes a trial whose codebook collapsed, whatever the kind;
- ``_records.py``: what vqtune's own rules compare, per trial and stage epoch (intervals of the objectives).

Each ``pruner.type`` of the schema (:class:`vqtune.config.SearchSpace`) is served by one entry of
:data:`PRUNERS`, an object with ``rule(space)`` (vqtune's rule, or None where the study's Optuna pruner
decides), ``optuna_pruner(space)`` (what the study is opened with) and ``warnings(space, configs)``. A new kind is
a value of ``pruner.type``, one module and one line here.
"""

from __future__ import annotations

from typing import Mapping, Optional, Protocol, Sequence

import optuna

from vqtune.config import SearchSpace, TrainConfig
from vqtune.study.pruning._bounds import MEDIAN_OF_BOUNDS, BoundsRule
from vqtune.study.pruning._optuna import HYPERBAND, NONE, SUCCESSIVE_HALVING
from vqtune.study.pruning._pareto import PARETO, ParetoRule
from vqtune.study.pruning._perplexity import codebook_collapsed, perplexity_warnings
from vqtune.study.pruning._records import Judged, objective_bounds, stage_key, violation_of

__all__ = [
    "PRUNERS",
    "BoundsRule",
    "Judged",
    "ParetoRule",
    "PrunerKind",
    "Rule",
    "build_pruner",
    "codebook_collapsed",
    "objective_bounds",
    "pruning_rule",
    "pruning_warnings",
    "rule_prunes",
    "stage_key",
    "violation_of",
]


class Rule(Protocol):
    """vqtune's own decision, on what each trial recorded per stage epoch (``objective_bounds``)."""

    def prunes(self, study: optuna.Study, number: int, records: Mapping[str, Mapping], key: str, epoch: int,
               signs: Sequence[float]) -> bool: ...


class PrunerKind(Protocol):
    """One value of ``pruner.type``."""

    kind: str

    def rule(self, space: SearchSpace) -> Optional[Rule]: ...

    def optuna_pruner(self, space: SearchSpace) -> optuna.pruners.BasePruner: ...

    def warnings(self, space: SearchSpace, configs: Sequence[TrainConfig]) -> list[str]: ...


PRUNERS: dict[str, PrunerKind] = {
    "median": MEDIAN_OF_BOUNDS,
    "hyperband": HYPERBAND,
    "successive_halving": SUCCESSIVE_HALVING,
    "pareto": PARETO,
    "none": NONE,
}


def pruning_rule(space: SearchSpace) -> Optional[Rule]:
    """The rule of vqtune's that decides a search's pruning, or None where Optuna's pruner does
    (:func:`build_pruner`: one objective, one stage)."""
    return PRUNERS[space.pruner.type].rule(space)


def build_pruner(space: SearchSpace) -> optuna.pruners.BasePruner:
    """The Optuna pruner the study is opened with: the file's for a one-stage, one-objective search; a
    NopPruner where vqtune prunes itself (:func:`pruning_rule`: a multi-objective search, whose objectives
    Optuna's pruners cannot take, and a two-stage one, whose stage-1 values they would compare with stage-2
    ones). Options the pruner does not take are a ConfigError naming ``pruner.options``."""
    return PRUNERS[space.pruner.type].optuna_pruner(space)


def rule_prunes(rule: Rule, study: optuna.Study, number: int, records: Mapping[str, Mapping], key: str,
                epoch: int, signs: Sequence[float]) -> bool:
    """Whether ``rule`` prunes trial ``number`` of ``study`` at stage epoch ``key`` (``epoch`` in its series),
    given the trial's ``records`` so far (its ``objective_bounds``: key -> :meth:`Judged.to_json`), against
    what the other trials recorded at ``key``: the COMPLETE ones for :class:`BoundsRule` (as Optuna's median
    pruner), every one that reached ``key`` for :class:`ParetoRule`."""
    return rule.prunes(study, number, records, key, epoch, signs)


def pruning_warnings(space: SearchSpace, configs: Sequence[TrainConfig]) -> list[str]:
    """What keeps the search's pruning rules from ever pruning a trial of ``configs`` (the space's corner
    configurations), one line each: the study's pruner's, then the perplexity rule's."""
    return PRUNERS[space.pruner.type].warnings(space, configs) + perplexity_warnings(space, configs)
