"""Optuna sampler and pruner built from a search-space file.

Neither is stored in the database: every process that loads the study builds them again from the file.
"""

from __future__ import annotations

import optuna

from vqtune.config import CategoricalParam, FloatParam, IntParam, SearchSpace
from vqtune.errors import ConfigError


def build_sampler(space: SearchSpace, trials_so_far: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler of the file, its seed moved on by the trials the study already holds: a resumed,
    seeded search draws new parameters instead of replaying the ones of its first run."""
    spec = space.sampler
    options = dict(spec.options)
    seed = None if spec.seed is None else spec.seed + trials_so_far
    kinds = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "gp": optuna.samplers.GPSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
    }
    try:
        if spec.type == "grid":
            return optuna.samplers.GridSampler(grid_of(space), seed=seed, **options)
        return kinds[spec.type](seed=seed, **options)
    except TypeError as exc:
        raise ConfigError(
            f"sampler.options: {exc} (options are keyword arguments of the {spec.type} sampler)"
        ) from None


def build_pruner(space: SearchSpace) -> optuna.pruners.BasePruner:
    spec = space.pruner
    options = dict(spec.options)
    epochs = space.base.total_epochs
    try:
        if spec.type == "median":
            return optuna.pruners.MedianPruner(**options)
        if spec.type == "hyperband":
            options.setdefault("max_resource", epochs)
            return optuna.pruners.HyperbandPruner(**options)
        if spec.type == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(**options)
        return optuna.pruners.NopPruner()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"pruner.options: {exc} (options are keyword arguments of the {spec.type} pruner)") from None


def grid_of(space: SearchSpace) -> dict[str, list]:
    """Every value of every parameter, for the grid sampler."""
    grid = {}
    for key, param in space.space.items():
        if isinstance(param, CategoricalParam):
            grid[key] = list(param.choices)
        elif isinstance(param, IntParam):
            grid[key] = list(range(param.low, param.high + 1, param.step))
        elif isinstance(param, FloatParam):
            n = round((param.high - param.low) / param.step)
            # rounded: low + i * step drifts past high in floating point (0.1 + 2 * 0.1 > 0.3)
            grid[key] = [min(round(param.low + i * param.step, 12), param.high) for i in range(n + 1)]
        if len(grid[key]) > 10_000:
            raise ConfigError(f"space.{key}: {len(grid[key])} grid values; use a larger step or another sampler")
    return grid
