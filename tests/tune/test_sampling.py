"""Samplers, pruners and suggestions built from search-space files (no Ray needed)."""

import optuna
import pytest

from tests.tune.conftest import make_space
from vqtune.errors import ConfigError
from vqtune.study import build_pruner, build_sampler, suggest

GRIDDABLE = {
    "model.codebook_size": {"type": "categorical", "choices": [32, 64]},
    "model.downsample": {"type": "int", "low": 1, "high": 2},
    "quantizer.beta": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1},
}


@pytest.mark.parametrize("kind, cls", [
    ("tpe", optuna.samplers.TPESampler), ("random", optuna.samplers.RandomSampler),
    ("gp", optuna.samplers.GPSampler), ("cmaes", optuna.samplers.CmaEsSampler),
    ("grid", optuna.samplers.GridSampler),
])
def test_every_sampler(tmp_path, kind, cls):
    space = make_space(tmp_path, sampler={"type": kind, "seed": 0}, space=GRIDDABLE)
    assert isinstance(build_sampler(space), cls)


def test_grid_covers_every_combination(tmp_path):
    space = make_space(tmp_path, sampler={"type": "grid", "seed": 0}, space=GRIDDABLE)
    study = optuna.create_study(sampler=build_sampler(space))
    seen = set()
    for i in range(2 * 2 * 3):
        trial = study.ask()
        seen.add(tuple(sorted(suggest(trial, space).items())))
        if i < 11:  # the grid sampler stops the study after the last one, which only optimize() allows
            study.tell(trial, 0.0)
    assert len(seen) == 12


@pytest.mark.parametrize("kind, cls", [
    ("median", optuna.pruners.MedianPruner), ("hyperband", optuna.pruners.HyperbandPruner),
    ("successive_halving", optuna.pruners.SuccessiveHalvingPruner), ("none", optuna.pruners.NopPruner),
])
def test_every_pruner(tmp_path, kind, cls):
    assert isinstance(build_pruner(make_space(tmp_path, pruner={"type": kind})), cls)


def test_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="sampler.options: .*n_startup_trail"):
        build_sampler(make_space(tmp_path, sampler={"type": "tpe", "options": {"n_startup_trail": 3}}))
    with pytest.raises(ConfigError, match="pruner.options"):
        build_pruner(make_space(tmp_path, pruner={"type": "median", "options": {"warmup": 3}}))


def test_conditional_parameters_are_sampled_only_when_their_condition_holds(tmp_path):
    space = make_space(tmp_path, sampler={"type": "random", "seed": 0}, space={
        "quantizer.decay": {"type": "float", "low": 0.8, "high": 0.99, "when": {"quantizer.ema": [True]}},
        "quantizer.ema": {"type": "categorical", "choices": [True, False]},
    })
    study = optuna.create_study(sampler=build_sampler(space))
    draws = [suggest(study.ask(), space) for _ in range(30)]
    assert all(("quantizer.decay" in d) == d["quantizer.ema"] for d in draws)
    assert {d["quantizer.ema"] for d in draws} == {True, False}
