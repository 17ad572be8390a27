from pathlib import Path

import pytest

from vqtune.config import PARAM_TYPES, SearchSpace, load_search_space, validate
from vqtune.errors import ConfigError

SHIPPED = sorted(Path(__file__).resolve().parents[2].joinpath("search_spaces").glob("*.yaml"))

HEAD = "study: s\n"


def _load(tmp_path, text, overrides=(), settings=None):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return load_search_space(path, overrides, settings)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_search_spaces_are_valid(path):
    space = load_search_space(path)
    assert space.space and space.n_trials >= 1


def test_every_distribution_kind_and_conditions(tmp_path):
    space = _load(tmp_path, HEAD + """
space:
  model.codebook_size: {type: categorical, choices: [64, 128]}
  quantizer.beta: {type: float, low: 0.1, high: 2.0, log: true}
  quantizer.decay: {type: float, low: 0.9, high: 0.99, step: 0.01, when: {quantizer.ema: [true]}}
  model.downsample: {type: int, low: 1, high: 3}
  quantizer.ema: {type: categorical, choices: [true, false]}
""")
    assert space.space["quantizer.decay"].when == {"quantizer.ema": [True]}
    assert space.storage.url == "sqlite:///studies/vqtune.db"
    trial = space.trial_config({"model.codebook_size": 64, "quantizer.beta": 0.5})
    assert trial.model.codebook_size == 64 and trial.quantizer.beta == 0.5
    assert trial.optim == space.base.optim


def test_flags_and_overrides(tmp_path):
    space = _load(
        tmp_path, HEAD + "space:\n  optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n",
        overrides=["base.optim.epochs=3", "n_trials=5", "sampler.options.n_startup_trials=4"],
        settings={"storage.url": "postgresql+psycopg2://u:p#w@h/db", "study": "other"},
    )
    assert (space.base.optim.epochs, space.n_trials, space.study) == (3, 5, "other")
    assert space.sampler.options == {"n_startup_trials": 4}
    assert space.storage.url == "postgresql+psycopg2://u:p#w@h/db"  # taken as it is, not parsed as YAML


@pytest.mark.parametrize(
    "body, expected",
    [
        ("space:\n  optim.lr: {type: float, low: 0.1, high: 0.01}\n", r"space.optim.lr: low \(0.1\) must not exceed high \(0.01\)"),
        ("space:\n  optim.lr: {type: float, low: 0, high: 0.01, log: true}\n", r"space.optim.lr: log scale needs low > 0"),
        ("space:\n  model.downsample: {type: int, low: 1, high: 4, step: 2}\n", r"space.model.downsample: step 2 does not divide high - low = 3"),
        ("space:\n  quantizer.beta: {type: float, low: 0.1, high: 1.0, step: 0.4}\n", r"step 0.4 does not divide"),
        ("space:\n  model.codebook_size: {type: categorical, choices: []}\n", r"space.model.codebook_size.choices: List should have at least 1 item"),
        ("space:\n  model.codebok_size: {type: int, low: 2, high: 4}\n", r"space.model.codebok_size: not a training config key: unknown key 'codebok_size' in model"),
        ("space:\n  optim.lr: {type: float, low: 1.0e-4, high: 0.1, when: {quantizer.ema: [true]}}\n", r"space.optim.lr.when: 'quantizer.ema' is not a parameter of this space"),
        ("space:\n  optim.lr: {type: uniform, low: 0.1, high: 1}\n", r"space.optim.lr: Input tag 'uniform' found using 'type' does not match any of the expected tags: 'int', 'float', 'categorical'"),
        ("space:\n  optim.lr: {type: float, low: 0.1, high: 1, scale: 2}\n", r"space.optim.lr.scale: unknown key; valid keys here: high, log, low, step, type, when"),
        ("space:\n  model.downsample: {type: int, low: 2, high: 5}\n", r"space.model.downsample = 5 gives an invalid training config: model.downsample: Input should be less than or equal to 4"),
        ("base:\n  data:\n    resolution: 36\nspace:\n  model.downsample: {type: int, low: 1, high: 3}\n", r"space.model.downsample = 3 gives an invalid training config: data.resolution 36x36 is not divisible"),
        ("n_trials: 0\nspace:\n  optim.lr: {type: float, low: 0.1, high: 1}\n", r"n_trials: Input should be greater than or equal to 1"),
        ("sampler: {type: bayes}\nspace:\n  optim.lr: {type: float, low: 0.1, high: 1}\n", r"sampler.type: Input should be 'tpe', 'random', 'gp', 'cmaes', 'grid', 'nsga2' or 'nsga3'"),
        ("pruner: {type: asha}\nspace:\n  optim.lr: {type: float, low: 0.1, high: 1}\n", r"pruner.type: Input should be 'median', 'hyperband', 'successive_halving', 'pareto' or 'none'"),
        ("sampler: {type: grid}\nspace:\n  optim.lr: {type: float, low: 0.1, high: 1}\n", r"space.optim.lr: the grid sampler needs a step"),
        ("space:\n  optim.lr: {type: float, low: 0.1, high: 1, when: {optim.epochs: [1]}}\n  optim.epochs: {type: int, low: 1, high: 3, when: {optim.lr: [0.5]}}\n", r"form a cycle"),
        ("objective: {metric: accuracy}\nspace:\n  optim.lr: {type: float, low: 0.1, high: 1}\n", r"objective.metric: Input should be 'val_recon_mse'"),
        ("resources: {gpu: -1}\nspace:\n  optim.lr: {type: float, low: 0.1, high: 1}\n", r"resources.gpu"),
        ("base:\n  optim:\n    batch_size: 0\nspace:\n  optim.lr: {type: float, low: 0.1, high: 1}\n", r"base.optim.batch_size: Input should be greater than or equal to 1"),
        ("bogus: 1\nspace:\n  optim.lr: {type: float, low: 0.1, high: 1}\n", r"bogus: unknown key; valid keys here: artifact_dir, base, constraints, max_concurrent, n_trials, objective"),
        ("", r"study: Field required"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path, body, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        _load(tmp_path, HEAD + body if body else "")
    assert str(info.value).startswith(str(tmp_path / "space.yaml"))
    assert "\n" not in str(info.value)


def test_a_trial_whose_parameters_do_not_fit_together_fails_with_one_line_naming_them():
    from vqtune.errors import ConfigError

    space = validate(SearchSpace, {"study": "s", "space": {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-3}}},
                     "test", tags=PARAM_TYPES)
    with pytest.raises(ConfigError) as caught:
        space.trial_config({"data.resolution": 36, "model.downsample": 3})
    message = str(caught.value)
    assert message.startswith("the trial's parameters data.resolution = 36, model.downsample = 3 give an invalid")
    assert "not divisible by 2^model.downsample = 8" in message and "\n" not in message
