"""``vqtune sample``: draw code grids from a run's prior and decode them with its VQ-VAE."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from vqtune import run_dir as rd
from vqtune.errors import CheckpointError
from vqtune.train._build import load_vqvae, resolve_device
from vqtune.train._checkpoint import fields_of
from vqtune.train._images import image_grid, to_uint8
from vqtune.train._prior import load_prior

ROW = 8


@torch.no_grad()
def sample_images(run_dir: Path, n: int = 64, temperature: float = 1.0, seed: int = 0,
                  device: str = "auto") -> Image.Image:
    """A grid of ``n`` decoded prior samples (8 per row) from the stage-2 run in ``run_dir``."""
    run_dir = Path(run_dir)
    path = next((run_dir / name for name in (rd.PRIOR.best, rd.PRIOR.last) if (run_dir / name).exists()), None)
    if path is None:
        raise CheckpointError(f"{run_dir}: no {rd.PRIOR.best} here; train a prior first (a config with a prior: section)")
    if n < 1 or temperature <= 0:
        raise CheckpointError(f"--n must be >= 1 and --temperature > 0 (got {n}, {temperature})")
    torch_device = resolve_device(device)
    prior, state = load_prior(path, device=torch_device)
    with fields_of(path):
        vqvae_path = Path(state["vqvae_checkpoint"])
        # Each level's grid, top first: a two-level checkpoint names the top one apart (``top_grid``).
        keys = ("top_grid", "grid") if "top_grid" in state else ("grid",)
        shapes = tuple(tuple(int(size) for size in state[key]) for key in keys)
    vqvae, _ = load_vqvae(vqvae_path, device=torch_device)
    generator = torch.Generator(device=torch_device).manual_seed(seed)
    codes = prior.sample_grids(n, shapes, temperature=temperature, generator=generator)
    images = to_uint8(vqvae.decode(codes))
    return image_grid([images[i : i + ROW] for i in range(0, n, ROW)], min_tile=32)
