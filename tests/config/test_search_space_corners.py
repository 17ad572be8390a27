"""Every categorical corner of every shipped search space trains: each combination of the categorical parameters'
choices (a parameter its ``when:`` disables takes none), the other parameters at their low end, built into the
trial's TrainConfig as a search builds it, shrunk in cost only, takes one training step of the VQ-VAE in the
trainer's own epoch loop and one of the prior when the trial trains one."""

import functools
import itertools
import math
from pathlib import Path

import pytest
import torch

from vqtune.config import CategoricalParam, DataConfig, SearchSpace, TrainConfig, load_search_space
from vqtune.config._loading import set_path
from vqtune.data import ImageData, load_images
from vqtune.study import enabled
from vqtune.train import Reporter
from vqtune.train._images import to_model_space
from vqtune.train._prior import build_prior, evaluate_prior, nll_sum
from vqtune.train._vqvae import VQVAEStage

SEARCH_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
BATCH = 4  # images (and code grids) per step; the training split is one batch, so an epoch is one step
VAL = 2

# What a corner's cost is made of, and the cheap value each takes when the space does not search it.
CHEAP = {
    "data.crops_per_image": 1,
    "optim.batch_size": BATCH,
    "optim.epochs": 1,
    "model.hidden": 8,
    "model.residual_hidden": 4,
    "model.residual_blocks": 0,
}
CHEAP_PRIOR = {"prior.channels": 8, "prior.layers": 2, "prior.batch_size": BATCH, "prior.epochs": 1}


def corners(space: SearchSpace) -> list[dict]:
    """The distinct trials of ``space`` at its categorical corners: ``{dotted key: value}`` each, as
    :func:`vqtune.study.enabled` resolves the conditions, the non-categorical parameters at their low end."""
    categorical = {key: param.choices for key, param in space.space.items() if isinstance(param, CategoricalParam)}
    low = {key: param.low for key, param in space.space.items() if not isinstance(param, CategoricalParam)}
    trials: dict[tuple, dict] = {}
    for choices in itertools.product(*categorical.values()):
        params = enabled(space, {**low, **dict(zip(categorical, choices))})
        trials.setdefault(tuple(sorted((key, repr(value)) for key, value in params.items())), params)
    return list(trials.values())


def _corner_id(name: str, space: SearchSpace, params: dict) -> str:
    """``quantizers[kind=vq,ema=False,...]``: the space and its categorical values (the rest are at their low end)."""
    named = [f"{key.rsplit('.', 1)[-1]}={value}" for key, value in params.items()
             if isinstance(space.space[key], CategoricalParam)]
    return f"{name}[{','.join(named)}]"


SPACES = {path.stem: load_search_space(path) for path in sorted(SEARCH_SPACES.glob("*.yaml"))}
CASES = [pytest.param(name, params, id=_corner_id(name, space, params))
         for name, space in SPACES.items() for params in corners(space)]


def cheap(config: TrainConfig, params: dict) -> TrainConfig:
    """``config`` at the smallest cost that keeps every searched value: the smallest resolution of two latent
    cells a side on the coarsest grid, one photo crop each, batches of 4, one epoch, a narrow trunk and prior."""
    m = config.model
    halvings = m.downsample + (m.top_downsample if m.levels == 2 else 0)
    wanted = {**CHEAP, "data.resolution": max(8, 2 * 2**halvings), **(CHEAP_PRIOR if config.prior else {})}
    data = config.model_dump(mode="json")
    for key, value in wanted.items():
        if key not in params:
            set_path(data, key, value)
    return TrainConfig.model_validate(data)


@functools.lru_cache(maxsize=None)
def photos(resolution: int, channels: int) -> ImageData:
    """Real crops of the trial's size and channels, one training batch and a small validation split. Every
    corner reads these rather than its own source: the corners differ in the model, not the data (and the
    Fashion-MNIST files need not be installed)."""
    data = load_images(DataConfig(resolution=resolution, crops_per_image=1, channels=channels))
    return ImageData(data.train[:BATCH].clone(), data.val[:VAL].clone(), f"{data.description}, {BATCH} of them")


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test of this module on one torch thread (tests/conftest.py)."""


def _get(config: TrainConfig, key: str):
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize("name, params", CASES)
def test_categorical_corner_of_shipped_space_trains(name, params):
    trial = SPACES[name].trial_config(params)
    config = cheap(trial, params)
    assert {key: _get(config, key) for key in params} == {key: _get(trial, key) for key in params}

    data = config.data
    stage = VQVAEStage(config, photos(data.size[0], data.image_channels), torch.device("cpu"))
    assert stage.steps == 1
    metrics, train_loss = stage.train_epoch(1, Reporter())
    assert math.isfinite(train_loss)
    metrics.update(stage.evaluate())
    assert math.isfinite(metrics["val_recon_mse"]) and metrics["val_active_codes"] >= 1

    if config.prior is None:
        return
    # Stage 2 as the trial's PriorStage takes it, on codes of the model just trained (a prior-only trial's
    # checkpoint would have a model of its own; its codes are grids of the same kind).
    grids = {}
    for split, images in (("train", stage.images.train), ("val", stage.images.val)):
        codes = stage.model.encode(to_model_space(images))  # one grid, or (top, bottom)
        grids[split] = codes if isinstance(codes, tuple) else (codes,)
    top_downsample = config.model.top_downsample if config.model.levels == 2 else None
    torch.manual_seed(config.seed)
    prior = build_prior(config.prior, config.codebook_size, top_downsample)
    optimizer = torch.optim.Adam(prior.parameters(), lr=config.prior.lr)
    prior.train()
    loss = nll_sum(prior, grids["train"]) / sum(grid.numel() for grid in grids["train"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert math.isfinite(evaluate_prior(prior, grids["val"], config.prior.batch_size))
