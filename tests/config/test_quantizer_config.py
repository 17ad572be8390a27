"""The quantizer section: one schema per kind, chosen by ``quantizer.kind`` (vq when missing); a key of another
kind is refused in one line that names it and the fix; a section written whole, every kind's keys at their
defaults (as configs and checkpoints were before the kinds had sections of their own), still loads."""

import pytest

from vqtune.config import FSQConfig, TrainConfig, VQConfig, load_train_config, quantizer_config, validate
from vqtune.errors import ConfigError


def test_a_missing_kind_is_vq_and_each_kind_has_only_its_keys():
    assert isinstance(TrainConfig().quantizer, VQConfig)
    assert isinstance(quantizer_config({"beta": 0.5}), VQConfig)
    fsq = quantizer_config({"kind": "fsq"})
    assert isinstance(fsq, FSQConfig) and fsq.fsq_levels == [8, 5, 5, 5] and fsq.own_codebook_size() == 1000
    assert set(TrainConfig().model_dump()["quantizer"]) == set(VQConfig.model_fields)
    assert set(validate(TrainConfig, {"quantizer": {"kind": "fsq"}}, "x").model_dump()["quantizer"]) \
        == {"kind", "levels"}


@pytest.mark.parametrize("quantizer, line", [
    ({"kind": "fsq", "beta": 0.5},
     "train.yaml: quantizer.beta: applies to quantizer.kind vq only; remove it or set quantizer.kind: vq"),
    ({"kind": "fsq", "dead_code_steps": 0},
     "train.yaml: quantizer.dead_code_steps: applies to quantizer.kind vq only; remove it or set quantizer.kind: vq"),
    ({"levels": [4, 4]},
     "train.yaml: quantizer.levels: applies to quantizer.kind fsq only; remove it or set quantizer.kind: fsq"),
    ({"kind": "pq"}, "train.yaml: quantizer: unknown kind; quantizer.kind is one of: vq, fsq"),
])
def test_a_key_of_another_kind_is_refused_in_one_line(quantizer, line):
    with pytest.raises(ConfigError) as refused:
        validate(TrainConfig, {"quantizer": quantizer}, "train.yaml")
    assert str(refused.value) == line


def test_set_reaches_the_keys_of_every_kind():
    config = load_train_config(None, ["quantizer.kind=fsq", "quantizer.levels=4,4,4"])
    assert config.quantizer.kind == "fsq" and config.codebook_size == 64
    with pytest.raises(ConfigError, match=r"^--set quantizer\.levls: unknown key 'levls' in quantizer; valid keys: "
                                          r"beta, .*, levels, normalize$"):
        load_train_config(None, ["quantizer.levls=4,4"])


def test_a_section_written_with_every_kinds_keys_at_their_defaults_still_loads():
    whole = {"beta": 0.25, "ema": True, "decay": 0.99, "eps": 1e-5, "dead_code_steps": 50, "kmeans_init": False,
             "codebook_dim": None, "normalize": False, "estimator": "straight_through", "levels": None}
    assert validate(TrainConfig, {"quantizer": {**whole, "kind": "vq"}}, "x").quantizer == VQConfig()
    fsq = validate(TrainConfig, {"quantizer": {**whole, "kind": "fsq", "levels": [4, 4]}}, "x").quantizer
    assert fsq == FSQConfig(levels=[4, 4])
    # a trial of a search over the kind sets it on the base config dumped whole: the base's vq keys at their defaults
    data = TrainConfig().model_dump(mode="json")
    data["quantizer"].update({"kind": "fsq", "levels": "8,5,5,5"})
    assert TrainConfig.model_validate(data).codebook_size == 1000
