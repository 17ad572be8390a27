"""How long a config's training steps take on this machine: a few real steps of each stage on stand-in data.

The stand-in data has the config's shapes (random images of ``data.size``, random code grids of the latent
grid), so a step costs what it costs on real data; nothing is read from the data source and nothing written.
"""

from __future__ import annotations

import contextlib
import time
from typing import NamedTuple, Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

from vqtune.config import TrainConfig
from vqtune.data import ImageData
from vqtune.train._build import build_model, resolve_device
from vqtune.train._prior import build_prior, evaluate_prior, nll_sum, top_downsample_of
from vqtune.train._reporter import Reporter
from vqtune.train._vqvae import VQVAEStage


class StepTime(NamedTuple):
    """One stage's measured costs: a training step of ``batch_size`` items, and evaluation per item (a
    validation image in stage 1, a code grid in stage 2)."""

    stage: str
    batch_size: int
    step_seconds: float
    eval_seconds_per_item: float
    sample_seconds_per_position: float = 0.0  # stage 2: drawing ``samples`` grids, per latent position


class _StepClock(Reporter):
    """The time after each training step (on CUDA, once the step's kernels have finished)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.times: list[float] = []

    def on_step(self, epoch: int, step: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(time.perf_counter())


def in_channels(config: TrainConfig) -> int:
    return config.data.image_channels


def time_vqvae_steps(config: TrainConfig, steps: int = 3, device: Optional[str] = None) -> StepTime:
    """Time ``steps`` training steps of stage 1 (after one untimed step) and one evaluation batch."""
    torch_device = resolve_device(device or config.device)
    batch = config.optim.batch_size
    generator = torch.Generator().manual_seed(0)
    shape = (batch * (steps + 1), in_channels(config), *config.data.size)
    train = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    val = torch.randint(0, 256, (batch, *shape[1:]), dtype=torch.uint8, generator=generator)
    stage = VQVAEStage(config, ImageData(train, val, "stand-in images"), torch_device)
    clock = _StepClock(torch_device)
    stage.train_epoch(1, clock)
    step_seconds = (clock.times[-1] - clock.times[0]) / steps
    start = time.perf_counter()
    stage.evaluate()
    return StepTime("vqvae", batch, step_seconds, (time.perf_counter() - start) / len(val))


def time_prior_steps(config: TrainConfig, steps: int = 3, device: Optional[str] = None,
                     samples: int = 64) -> StepTime:
    """Time ``steps`` training steps of the prior (after one untimed step) on code grids of ``config``'s latent
    grid and codebook, one evaluation batch, and a draw of ``samples`` grids of one row (a position costs the
    sampler the same on any row). ``config.model`` and ``config.data`` must be those of the VQ-VAE
    whose codes the prior learns."""
    torch_device = resolve_device(device or config.device)
    prior, k = config.prior, config.codebook_size
    generator = torch.Generator().manual_seed(0)
    grids = tuple(torch.randint(0, k, (prior.batch_size * (steps + 1), h, w), generator=generator).to(torch_device)
                  for h, w in config.grids)
    latents = sum(h * w for h, w in config.grids)
    torch.manual_seed(config.seed)
    model = build_prior(prior, k, _top_downsample(config)).to(torch_device)
    optimizer = torch.optim.Adam(model.parameters(), lr=prior.lr, weight_decay=prior.weight_decay)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if torch_device.type == "cuda" else None
    clock = _StepClock(torch_device)
    model.train()
    for step in range(steps + 1):  # the same step as PriorStage.train_epoch
        batch = tuple(grid[step * prior.batch_size : (step + 1) * prior.batch_size] for grid in grids)
        with autocast if autocast is not None else contextlib.nullcontext():
            loss = nll_sum(model, batch) / (len(batch[0]) * latents)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if prior.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), prior.grad_clip)
        optimizer.step()
        clock.on_step(1, step + 1)
    step_seconds = (clock.times[-1] - clock.times[0]) / steps
    val = tuple(grid[: prior.batch_size] for grid in grids)
    start = time.perf_counter()
    evaluate_prior(model, val, prior.batch_size)
    if torch_device.type == "cuda":
        torch.cuda.synchronize(torch_device)
    eval_seconds = (time.perf_counter() - start) / len(val[0])
    # One row of the top grid, and the rows of each grid below that it conditions.
    shapes = [(1, config.grids[0][1])]
    for (above, _), (height, width) in zip(config.grids, config.grids[1:]):
        shapes.append((shapes[-1][0] * height // above, width))
    start = time.perf_counter()
    model.sample_grids(samples, shapes)
    positions = sum(height * width for height, width in shapes)
    if torch_device.type == "cuda":
        torch.cuda.synchronize(torch_device)
    return StepTime("prior", prior.batch_size, step_seconds, eval_seconds, (time.perf_counter() - start) / positions)


@torch.no_grad()
def forward_flops(config: TrainConfig) -> dict[str, int]:
    """Floating-point operations of one forward pass of each model ``config`` trains, per item: the VQ-VAE on
    one image (``vqvae``), the prior on one code grid (``prior``). A cost to rank configs by without running
    them. For stage 2 alone, ``config.model`` and ``config.data`` must be those of the VQ-VAE it reads."""
    flops = {}
    torch.manual_seed(0)
    if "vqvae" in config.stages:
        model = build_model(config, in_channels(config)).eval()
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, in_channels(config), *config.data.size))
        flops["vqvae"] = int(counter.get_total_flops())
    if config.prior is not None:
        prior = build_prior(config.prior, config.codebook_size, _top_downsample(config)).eval()
        with FlopCounterMode(display=False) as counter:
            prior.grid_logits(tuple(torch.zeros(1, h, w, dtype=torch.long) for h, w in config.grids))
        flops["prior"] = int(counter.get_total_flops())
    return flops


def _top_downsample(config: TrainConfig) -> Optional[int]:
    """The halvings between the grids of a two-level model (its prior has one per level); None for one level."""
    return top_downsample_of([height for height, _ in config.grids])
