"""Every quantizer option the training config offers, alone and together: FSQ at each small number of levels,
and one training step of every combination of the codebook quantizer's options, at one level and at two, in the
model the trainer builds from a TrainConfig."""

import itertools
import re
from typing import Optional

import pytest
import torch
import torch.nn.functional as F

from vqtune.config import DataConfig, TrainConfig, VQConfig, validate
from vqtune.data import load_images
from vqtune.errors import ConfigError
from vqtune.models import FiniteScalarQuantizer
from vqtune.models.quantizers import Restarts
from vqtune.train import build_model


@pytest.mark.parametrize("levels", range(2, 17), ids=lambda levels: f"L{levels}")
def test_fsq_channel_of_l_levels_takes_exactly_l_values(levels):
    torch.manual_seed(0)
    fsq = FiniteScalarQuantizer([levels], embedding_dim=1)
    # far past both ends of the tanh, densely through its middle, and where an encoder's outputs lie
    z = torch.cat([torch.linspace(-20, 20, 40_001), 3 * torch.randn(4096)]).view(1, 1, 1, -1)
    out = fsq(z)
    assert not out.quantized.isnan().any()
    expected = (torch.arange(levels) - levels // 2).float() / (levels // 2)
    assert torch.equal(out.quantized.unique(), expected)
    assert sorted(out.indices.unique().tolist()) == list(range(levels))
    assert float(fsq.bound(torch.zeros(1, 1, 1, 1))) == pytest.approx(0.0, abs=1e-6)


# The quantizer section's options, each with the values that take a different path through the code: EMA or the
# codebook loss, plain or cosine codes, a factorized lookup (4 of the 8 embedding dimensions) or none, the
# straight-through estimator or the rotation trick, restarts off or after one unused step, k-means or not.
VQ_OPTIONS = {
    "ema": [True, False],
    "normalize": [False, True],
    "codebook_dim": [None, 4],
    "estimator": ["straight_through", "rotation"],
    "dead_code_steps": [0, 1],
    "kmeans_init": [False, True],
}
VQ_COMBINATIONS = [dict(zip(VQ_OPTIONS, values)) for values in itertools.product(*VQ_OPTIONS.values())]
# More codes than the 4 x 4 x 4 latent cells of a batch: some go unused at every level, and with
# dead_code_steps 1 are re-seeded at the first step.
CODES = 128
BATCH = 4


def _combination_id(options: dict) -> str:
    return "-".join([
        "ema" if options["ema"] else "loss",
        "cosine" if options["normalize"] else "plain",
        f"dim{options['codebook_dim']}" if options["codebook_dim"] else "full",
        "rotation" if options["estimator"] == "rotation" else "straight",
        "restart" if options["dead_code_steps"] else "norestart",
        "kmeans" if options["kmeans_init"] else "uniform",
    ])


def _config(levels: int, quantizer: dict, codebook_size: Optional[int] = None) -> TrainConfig:
    """A tiny training config: 16 x 16 images, hidden 8, a 4 x 4 bottom grid (and a 2 x 2 top one)."""
    model = {"hidden": 8, "residual_hidden": 4, "residual_blocks": 0, "downsample": 2, "embedding_dim": 8,
             "levels": levels}
    if codebook_size is not None:
        model["codebook_size"] = codebook_size
    return TrainConfig.model_validate({"data": {"resolution": 16}, "model": model, "quantizer": quantizer,
                                       "optim": {"batch_size": BATCH}, "device": "cpu"})


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test of this module on one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """(4, 3, 16, 16) real photo crops in model space, [-0.5, 0.5]."""
    data = load_images(DataConfig(resolution=16, crops_per_image=1))
    return data.train[:BATCH].float() / 255 - 0.5


def _one_step_then_eval(config: TrainConfig, x: torch.Tensor) -> None:
    """One training step of the model built from ``config`` as the trainer takes it, then one eval forward;
    asserts what a user would see go wrong: a loss, an encoder gradient or an index that is not sound."""
    torch.manual_seed(0)
    model = build_model(config, in_channels=x.shape[1]).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr)
    k = config.codebook_size
    model.train()
    out = model(x)
    loss = F.mse_loss(out.reconstruction, x) + out.vq.loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    encoders = [model.encoder] + ([model.top_encoder] if config.model.levels == 2 else [])
    for encoder in encoders:
        grads = [p.grad for p in encoder.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)  # the decoder's gradient does reach the encoder
    model.eval()
    with torch.no_grad():
        evaluated = model(x)
    assert torch.isfinite(evaluated.reconstruction).all()
    for level in (*out.levels, *evaluated.levels):
        assert 0 <= int(level.indices.min()) and int(level.indices.max()) < k


@pytest.mark.parametrize("levels", [1, 2], ids=["one-level", "two-levels"])
@pytest.mark.parametrize("options", VQ_COMBINATIONS, ids=[_combination_id(o) for o in VQ_COMBINATIONS])
def test_one_training_step_of_every_codebook_option_combination(options, levels, photos, monkeypatch):
    config = _config(levels, {"kind": "vq", **options}, codebook_size=CODES)
    restarts = []
    restart = Restarts.restart

    def recording_restart(self, vq, dead, flat):
        restarts.append(bool(dead.any()))
        return restart(self, vq, dead, flat)

    monkeypatch.setattr(Restarts, "restart", recording_restart)
    _one_step_then_eval(config, photos)
    # restarts on: each level's quantizer re-seeded its unused codes in this very step
    assert restarts == ([True] * levels if options["dead_code_steps"] else [])


@pytest.mark.parametrize("levels", [1, 2], ids=["one-level", "two-levels"])
@pytest.mark.parametrize("fsq_levels", [None, [2, 3, 4]], ids=["default-levels", "levels-2-3-4"])
def test_one_training_step_of_fsq(fsq_levels, levels, photos):
    _one_step_then_eval(_config(levels, {"kind": "fsq", "levels": fsq_levels}), photos)


@pytest.mark.parametrize("options", VQ_COMBINATIONS, ids=[_combination_id(o) for o in VQ_COMBINATIONS])
def test_schema_refuses_codebook_options_with_fsq(options):
    # dead_code_steps is 0 or 1 in every combination, never the schema's default: each one sets a codebook
    # option that FSQ, having no codebook, does not take
    data = {"data": {"resolution": 16}, "quantizer": {"kind": "fsq", **options}, "device": "cpu"}
    with pytest.raises(ConfigError) as refused:
        validate(TrainConfig, data, "train.yaml")
    # what a user reads: one line naming the first such key (one away from its default) and the fix, then how many
    # more there are
    key = re.fullmatch(r"train\.yaml: quantizer\.(\w+): applies to quantizer\.kind vq only; remove it or set "
                       r"quantizer\.kind: vq( \(and \d+ more\))?", str(refused.value)).group(1)
    assert options[key] != VQConfig.model_fields[key].default
