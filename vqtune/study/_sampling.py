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
        "nsga2": optuna.samplers.NSGAIISampler,
        "nsga3": optuna.samplers.NSGAIIISampler,
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
    """The Optuna pruner of a single-objective search; a NopPruner for a multi-objective one, which vqtune
    prunes itself (:class:`ParetoRule`: Optuna's pruners take one objective)."""
    spec = space.pruner
    options = dict(spec.options)
    epochs = space.base.total_epochs
    if spec.type == "pareto":
        ParetoRule.from_options(options)  # refuses unknown options before anything runs
        return optuna.pruners.NopPruner()
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


class ParetoRule:
    """Pruning for multi-objective searches: at an epoch after ``n_warmup_steps``, once ``n_startup_trials``
    other trials have reached it, a trial is pruned when at least ``fraction`` of those trials have objective
    vectors at that epoch that dominate its own (no worse in every objective, better in one)."""

    def __init__(self, n_startup_trials: int = 4, n_warmup_steps: int = 1, fraction: float = 0.5):
        if n_startup_trials < 1 or n_warmup_steps < 0 or not 0 < fraction <= 1:
            raise ValueError("n_startup_trials >= 1, n_warmup_steps >= 0 and 0 < fraction <= 1")
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps
        self.fraction = fraction

    @classmethod
    def from_options(cls, options: dict) -> "ParetoRule":
        try:
            return cls(**options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"pruner.options: {exc} (options of the pareto pruner: n_startup_trials, "
                              "n_warmup_steps, fraction)") from None

    def should_prune(self, vector: list[float], others: list[list[float]], epoch: int,
                     signs: list[float]) -> bool:
        """``vector``: this trial's objectives at ``epoch``; ``others``: those of the other trials at the same
        epoch; ``signs``: +1 for an objective to minimize, -1 to maximize."""
        if epoch <= self.n_warmup_steps or len(others) < self.n_startup_trials:
            return False
        mine = [s * v for s, v in zip(signs, vector)]
        dominating = sum(
            all(s * o <= m for s, o, m in zip(signs, other, mine)) and any(s * o < m for s, o, m in zip(signs, other, mine))
            for other in others
        )
        return dominating >= self.fraction * len(others)
