"""The one rule of ``when:`` conditions, along a chain a -> b -> c: c is enabled only when b is, whatever value b
would have taken. Validation, suggestion on a real study, the grid's points and the dry run's corner
configurations all follow it."""

import optuna
import pytest
from optuna.trial import TrialState

from vqtune.config import PARAM_TYPES, SearchSpace, TrainConfig, active_params, validate
from vqtune.errors import ConfigError
from vqtune.study import enabled, grid_points, suggest
from vqtune.tune._plan import _corner_configs

# quantizer.decay applies to the vq kind only: with fsq, a trial that set it would be refused by the schema.
CHAIN = {
    "quantizer.kind": {"type": "categorical", "choices": ["vq", "fsq"]},  # a
    "quantizer.ema": {"type": "categorical", "choices": [True, False], "when": {"quantizer.kind": ["vq"]}},  # b
    "quantizer.decay": {"type": "categorical", "choices": [0.9, 0.99], "when": {"quantizer.ema": [True]}},  # c
}
BASE = {"data": {"source": "skimage-photos", "resolution": 16, "crops_per_image": 2},
        "model": {"hidden": 8, "residual_hidden": 4, "residual_blocks": 0, "downsample": 2, "embedding_dim": 4},
        "optim": {"epochs": 2, "batch_size": 4}}


def _space(tmp_path, **changes) -> SearchSpace:
    data = {"study": "chain", "n_trials": 30, "sampler": {"type": "random", "seed": 0}, "pruner": {"type": "none"},
            "storage": f"sqlite:///{tmp_path}/studies.db", "base": BASE, "space": CHAIN, **changes}
    return validate(SearchSpace, data, "test space", tags=PARAM_TYPES)


def test_a_parameter_whose_condition_names_a_disabled_one_is_disabled():
    space = _space("/nonexistent")
    # b is disabled by a = fsq, so its value (True) enables nothing
    assert active_params(space.space, {"quantizer.kind": "fsq", "quantizer.ema": True, "quantizer.decay": 0.9}) \
        == {"quantizer.kind": "fsq"}
    assert enabled(space, {"quantizer.kind": "vq", "quantizer.ema": True, "quantizer.decay": 0.9}) \
        == {"quantizer.kind": "vq", "quantizer.ema": True, "quantizer.decay": 0.9}
    assert enabled(space, {"quantizer.kind": "vq", "quantizer.ema": False, "quantizer.decay": 0.9}) \
        == {"quantizer.kind": "vq", "quantizer.ema": False}


def test_validation_checks_only_combinations_a_trial_can_have(tmp_path):
    # kind = fsq with decay = 0.9 is an invalid config; no trial has it, since fsq disables ema and so decay
    _space(tmp_path)
    # without the chain's middle link, decay would be enabled with fsq: that clash is refused, naming both
    unchained = {**CHAIN, "quantizer.decay": {**CHAIN["quantizer.decay"], "when": {"quantizer.kind": ["vq", "fsq"]}}}
    with pytest.raises(ConfigError, match="quantizer.kind = 'fsq', quantizer.decay = 0.9 together"):
        _space(tmp_path, space=unchained)


def test_suggest_on_a_real_study_follows_the_chain(tmp_path):
    space = _space(tmp_path)
    study = optuna.create_study(study_name=space.study, storage=space.storage.url,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    # a trial enqueued with every value still gets only its enabled parameters
    study.enqueue_trial({"quantizer.kind": "fsq", "quantizer.ema": True, "quantizer.decay": 0.9})
    for _ in range(30):
        trial = study.ask()
        params = suggest(trial, space)
        study.tell(trial, 0.0)
        assert params == enabled(space, {**{"quantizer.ema": True, "quantizer.decay": 0.9}, **params})
    stored = [t.params for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert stored[0] == {"quantizer.kind": "fsq"}
    for params in stored:
        if params["quantizer.kind"] == "fsq":
            assert params == {"quantizer.kind": "fsq"}
        elif not params["quantizer.ema"]:
            assert "quantizer.decay" not in params
    assert {len(p) for p in stored} == {1, 2, 3}  # each depth of the chain was drawn


def test_the_grid_has_one_point_per_distinct_trial(tmp_path):
    points = grid_points(_space(tmp_path, sampler={"type": "grid", "seed": 0}))
    assert sorted(points, key=lambda p: sorted(p.items())) == sorted([
        {"quantizer.kind": "fsq"},
        {"quantizer.kind": "vq", "quantizer.ema": False},
        {"quantizer.kind": "vq", "quantizer.ema": True, "quantizer.decay": 0.9},
        {"quantizer.kind": "vq", "quantizer.ema": True, "quantizer.decay": 0.99},
    ], key=lambda p: sorted(p.items()))


def test_the_dry_run_corners_follow_the_chain(tmp_path):
    configs = list(_corner_configs(_space(tmp_path)))
    # every corner of the 2 x 2 x 2 product is a trial: an fsq one with ema and decay at any value is the fsq trial
    # (its decay left alone), never dropped as a clash of fsq with a decay no such trial has
    assert len(configs) == 8
    assert sum(c.quantizer.kind == "fsq" for c in configs) == 4
    vq = {(c.quantizer.ema, c.quantizer.decay) for c in configs if c.quantizer.kind == "vq"}
    assert vq == {(False, TrainConfig().quantizer.decay), (True, 0.9), (True, 0.99)}
