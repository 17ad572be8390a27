"""The Optuna sampler built from a search-space file, and the points of a grid search.

It is not stored in the database: every process that loads the study builds it again from the file (so is the
pruner, :func:`vqtune.study.build_pruner`).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Optional

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from vqtune.config import CategoricalParam, FloatParam, IntParam, SearchSpace
from vqtune.errors import ConfigError
from vqtune.study._suggest import enabled

log = logging.getLogger("vqtune.tune")

GRID_POINT_ATTR = "vqtune:grid_point"  # trial system attribute: the grid point a trial was given


def build_sampler(space: SearchSpace, trial_number: Optional[int] = None) -> optuna.samplers.BaseSampler:
    """The sampler of the file; with ``trial_number``, a seeded one is seeded for that trial
    (:func:`trial_seed`, see :class:`TrialSeeded`)."""
    spec = space.sampler
    options = dict(spec.options)
    seed = spec.seed
    if seed is not None and trial_number is not None:
        seed = trial_seed(seed, trial_number)
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
            return GridSampler(space, seed=seed, **options)
        with warnings.catch_warnings():  # NSGA-III is marked experimental by Optuna; it is offered on purpose
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return kinds[spec.type](seed=seed, **options)
    except TypeError as exc:
        raise ConfigError(
            f"sampler.options: {exc} (options are keyword arguments of the {spec.type} sampler)"
        ) from None


def study_sampler(space: SearchSpace) -> optuna.samplers.BaseSampler:
    """The sampler a driver asks the study with: the file's, rebuilt for each trial when it is seeded."""
    if space.sampler.seed is None:  # each process draws from its own entropy: drivers differ already
        return build_sampler(space)
    return TrialSeeded(space)


def trial_seed(seed: int, trial_number: int) -> int:
    """The seed of trial ``trial_number``'s draws in a search seeded ``seed``: both mixed by a hash (with
    seed + number, seeds 0 and 1 would draw the same parameters one trial apart)."""
    return int(np.random.SeedSequence([seed % 2**32, trial_number]).generate_state(1)[0])


class TrialSeeded(optuna.samplers.BaseSampler):
    """The file's seeded sampler, built again before each trial with that trial's seed (:func:`trial_seed`).

    A trial's draws then depend on the seed, its number and the trials of the study, never on what this
    process drew before: a seeded search draws again what it drew, a resumed one goes on with new trial
    numbers, and two drivers of one study, whose trials have distinct numbers (the storage hands them out),
    never draw alike. (Seeding a driver with seed + trials so far gave two drivers started together the same
    seed, and the same parameters.) Optuna's samplers keep what must outlive a trial in the storage (CMA-ES its
    optimizer, NSGA-II/III their generations, TPE and GP the relative parameters of running trials); what they
    keep in memory is the random state and caches (GP's fitted kernels), so building them again costs time,
    not results. Everything else goes to the sampler of the last trial asked.
    """

    def __init__(self, space: SearchSpace):
        self.space = space
        self.inner = build_sampler(space)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        with warnings.catch_warnings():  # "experimental" (NSGA-III), said once already when this was built
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.inner = build_sampler(self.space, trial.number)
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: optuna.distributions.BaseDistribution) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, which enumerates the grid, with vqtune's rule for the point a trial is given.

    - The points are the distinct trials of the grid: values of a parameter that its ``when`` condition
      disables do not multiply the points (Optuna crosses every parameter with every other).
    - A point is taken while a trial holds it: finished (COMPLETE or PRUNED), RUNNING, or WAITING in the queue
      (a retry, with its parameters). A trial that FAILed frees its point, which the next trial is given
      again; no finished point is run twice. (Optuna counts a failed point as visited and gives trials
      0..n-1 points 0..n-1 whatever the queue holds, so a failed point was replaced by a duplicate.)
    - It never stops the study: Optuna's calls ``study.stop()`` from ``after_trial``, which raises outside
      ``optimize`` (a driver's own ``tell(FAIL)`` did); vqtune's searcher stops once every point is done.
    """

    def __init__(self, space: SearchSpace, seed: Optional[int] = None):
        super().__init__(grid_of(space), seed=seed)
        if seed is None:  # Optuna's takes None for 0: unseeded drivers would all choose alike
            self.reseed_rng()
        distinct: dict[tuple, dict[str, Any]] = {}
        for values in self._all_grids:
            point = enabled(space, dict(zip(self._param_names, values)))
            distinct.setdefault(_point_key(point), point)
        self.points = list(distinct.values())
        self._n_min_trials = len(self.points)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.system_attrs.get("fixed_params"):
            return  # enqueued with its parameters (a retry, or by hand): they are its point
        for _ in range(len(self.points)):
            free = self._free(study, trial.number)
            if not free:
                log.warning("every grid point is taken: trial %d repeats one", trial.number)
                self._give(study, trial, self.points[self._rng.rng.randint(len(self.points))])
                return
            point = free[self._rng.rng.randint(len(free))]
            self._give(study, trial, point)
            # Another driver may have given the same point meanwhile; each writes its choice before it looks,
            # so at least one of the two sees the other's and chooses again.
            if _point_key(point) in {_point_key(p) for p in self._free(study, trial.number)}:
                return

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: optuna.distributions.BaseDistribution) -> Any:
        point = trial.system_attrs.get(GRID_POINT_ATTR) or {}
        if param_name not in point:
            raise ValueError(f"trial {trial.number}: no grid value for {param_name} (a trial enqueued on a grid "
                             "search must give every parameter)")
        return point[param_name]

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values) -> None:
        pass  # never study.stop(): see the class

    def is_exhausted(self, study: optuna.Study) -> bool:
        return not self._free(study, None)

    def _give(self, study: optuna.Study, trial: FrozenTrial, point: dict[str, Any]) -> None:
        study._storage.set_trial_system_attr(trial._trial_id, GRID_POINT_ATTR, point)

    def _free(self, study: optuna.Study, number: Optional[int]) -> list[dict[str, Any]]:
        """The points no trial but ``number`` holds."""
        held = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
        taken = set()
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False, states=held):
            if t.number != number:
                point = t.system_attrs.get(GRID_POINT_ATTR) or t.system_attrs.get("fixed_params") or t.params
                taken.add(_point_key(point))
        return [p for p in self.points if _point_key(p) not in taken]


def grid_points(space: SearchSpace) -> list[dict[str, Any]]:
    """The distinct trials of a grid search (``{dotted key: value}`` each, conditions honoured)."""
    return GridSampler(space).points


def _point_key(point: dict[str, Any]) -> tuple:
    return tuple(sorted(point.items()))


def grid_of(space: SearchSpace) -> dict[str, list]:
    """Every value of every parameter, for the grid sampler (which crosses them, conditions honoured)."""
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
