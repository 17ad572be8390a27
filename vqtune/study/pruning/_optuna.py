"""Optuna's pruners (``pruner.type`` median, hyperband, successive_halving, none) on a one-stage,
one-objective search: the study holds the pruner, which reads the trials' intermediate values.

Their options are the Optuna classes' keyword arguments, and their defaults are read from those classes'
signatures, never written here again.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Optional, Sequence

import optuna

from vqtune.config import SearchSpace, TrainConfig
from vqtune.errors import ConfigError


def option(cls, options: Mapping[str, Any], name: str) -> Any:
    """``options[name]``, else the default of ``cls``'s keyword argument ``name``."""
    return options[name] if name in options else inspect.signature(cls).parameters[name].default


def build(cls, kind: str, options: Mapping[str, Any]):
    """``cls(**options)``; options it does not take are a ConfigError naming ``pruner.options``."""
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"pruner.options: {exc} (options are keyword arguments of the {kind} pruner)") from None


def longest(configs: Sequence[TrainConfig]) -> int:
    """The most epochs a trial of ``configs`` trains (both stages): the latest a pruner could act."""
    return max(config.total_epochs for config in configs)


def waiting_warnings(kind: str, space: SearchSpace, epochs: int, warmup: int, earliest: int,
                     startup: int) -> list[str]:
    """A rule that prunes from epoch ``earliest`` (after ``warmup`` epochs) once ``startup`` trials are in:
    whether that leaves an epoch before the last of ``epochs`` (the last is never pruned), and enough trials."""
    if earliest > epochs - 1:
        return [f"pruner {kind} cannot prune: n_warmup_steps {warmup} leaves no epoch before the last "
                f"({epochs}); lower pruner.options.n_warmup_steps or train more epochs (now {epochs})"]
    if startup >= space.n_trials:
        return [f"pruner {kind} cannot prune: it waits for n_startup_trials {startup} trials and the search "
                f"runs {space.n_trials}; lower pruner.options.n_startup_trials or raise n_trials"]
    return []


class OptunaPruner:
    """A value of ``pruner.type`` that one of Optuna's pruners serves: ``cls`` built with ``pruner.options``."""

    def __init__(self, kind: str, cls):
        self.kind, self.cls = kind, cls

    def rule(self, space: SearchSpace) -> None:
        """vqtune's own rule: none, the study's pruner decides."""
        return None

    def optuna_pruner(self, space: SearchSpace) -> optuna.pruners.BasePruner:
        return build(self.cls, self.kind, dict(space.pruner.options))

    def warnings(self, space: SearchSpace, configs: Sequence[TrainConfig]) -> list[str]:
        """Why it cannot prune any trial of ``configs`` (the space's corner configurations), one line each."""
        return []


class Median(OptunaPruner):
    """Optuna's median pruner: from epoch ``n_warmup_steps``, once ``n_startup_trials`` trials completed."""

    def __init__(self):
        super().__init__("median", optuna.pruners.MedianPruner)

    def warnings(self, space: SearchSpace, configs: Sequence[TrainConfig]) -> list[str]:
        options, epochs = space.pruner.options, longest(configs)
        warmup = int(option(self.cls, options, "n_warmup_steps"))
        startup = int(option(self.cls, options, "n_startup_trials"))
        return waiting_warnings(self.kind, space, epochs, warmup, warmup, startup)


class Rungs(OptunaPruner):
    """Hyperband and successive halving: they compare trials at rungs, the first at
    ``min_resource * reduction_factor ** min_early_stopping_rate``; hyperband's last resource is the trial's
    epochs unless ``max_resource`` is given."""

    def __init__(self, kind: str, cls, resource: Optional[str] = None):
        super().__init__(kind, cls)
        self.resource = resource

    def optuna_pruner(self, space: SearchSpace) -> optuna.pruners.BasePruner:
        options = dict(space.pruner.options)
        if self.resource:
            options.setdefault(self.resource, space.base.total_epochs)
        return build(self.cls, self.kind, options)

    def warnings(self, space: SearchSpace, configs: Sequence[TrainConfig]) -> list[str]:
        options, params, epochs = space.pruner.options, inspect.signature(self.cls).parameters, longest(configs)
        low = option(self.cls, options, "min_resource")
        low = 1 if low == "auto" else int(low)
        rate = int(option(self.cls, options, "min_early_stopping_rate")) if "min_early_stopping_rate" in params else 0
        first_rung = low * int(option(self.cls, options, "reduction_factor")) ** rate
        if first_rung > epochs - 1:
            return [f"pruner {self.kind} cannot prune: its first rung is at epoch {first_rung} (min_resource {low}) "
                    f"and the last epoch ({epochs}) is never pruned; lower pruner.options.min_resource or train more "
                    f"epochs (now {epochs})"]
        return []


class NoPruner(OptunaPruner):
    """``pruner.type: none``: Optuna's NopPruner (any options are left unread)."""

    def __init__(self):
        super().__init__("none", optuna.pruners.NopPruner)

    def optuna_pruner(self, space: SearchSpace) -> optuna.pruners.BasePruner:
        return optuna.pruners.NopPruner()


MEDIAN = Median()
HYPERBAND = Rungs("hyperband", optuna.pruners.HyperbandPruner, resource="max_resource")
SUCCESSIVE_HALVING = Rungs("successive_halving", optuna.pruners.SuccessiveHalvingPruner)
NONE = NoPruner()
