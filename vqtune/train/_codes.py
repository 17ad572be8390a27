"""A dataset as code grids: encoded once by a trained VQ-VAE and cached next to its checkpoint."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from vqtune import run_dir as rd
from vqtune.data import load_images
from vqtune.errors import CheckpointError
from vqtune.train._bound import discretized_gaussian_nats
from vqtune.train._build import vqvae_of
from vqtune.train._checkpoint import load_checkpoint, save_checkpoint
from vqtune.train._images import to_model_space

log = logging.getLogger("vqtune.train")

# Bump when what is cached changes meaning.
_CODES_FORMAT = 4


@dataclass(frozen=True)
class Codes:
    """Code grids of the train and val images, and what the two-stage bound needs from stage 1.

    train: (N, h, w) int64; val: (M, h, w) int64: the (bottom) code grids.
    train_top, val_top: a two-level model's top grids, (N, h', w') and (M, h', w'); None for one level.
    image_shape: (C, H, W) of the images the codes stand for.
    codebook_size: K.
    sigma: the decoder's sigma, fitted on the training split (RMS error of the clamped reconstructions).
    val_recon_mse: the VQ-VAE's reconstruction MSE on the val images (pixels in [0, 1], clamped).
    val_distortion_nats: -log p(x | z) per val image under the discretised Gaussian decoder, in nats.
    vqvae_epoch: the stage-1 epoch the checkpoint holds (for ``best.pt``: the epoch of lowest val_recon_mse).
    """

    train: torch.Tensor
    val: torch.Tensor
    image_shape: tuple[int, int, int]
    codebook_size: int
    sigma: float
    val_recon_mse: float
    val_distortion_nats: float
    vqvae_epoch: int = 0
    train_top: Optional[torch.Tensor] = None
    val_top: Optional[torch.Tensor] = None

    @property
    def levels(self) -> int:
        return len(self.grids("val"))

    def grids(self, split: str) -> tuple[torch.Tensor, ...]:
        """The code grids of ``split`` ("train" or "val"), one tensor per level, top first."""
        bottom, top = (self.train, self.train_top) if split == "train" else (self.val, self.val_top)
        return (bottom,) if top is None else (top, bottom)

    @property
    def subpixels(self) -> int:
        return math.prod(self.image_shape)

    @property
    def latents(self) -> int:
        """Latent cells of one image: of its grid, or of both its grids."""
        return sum(grid.shape[1] * grid.shape[2] for grid in self.grids("val"))


def encode_dataset(checkpoint: Path, batch_size: int = 256, device: str | torch.device = "cpu") -> Codes:
    """Encode the train and val images of ``checkpoint``'s own data config; cached in its directory.

    The cache is keyed by the checkpoint (its size and mtime: retraining misses it) and by a digest of the images
    themselves (images added to a folder, or other settings, miss it too).
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise CheckpointError(f"prior.vqvae_checkpoint: {checkpoint}: no such checkpoint file; train stage 1 first")
    state = load_checkpoint(checkpoint, map_location=device)
    model, config = vqvae_of(state, checkpoint, device)
    data = load_images(config.data)
    stat = checkpoint.stat()
    key = hashlib.sha256(json.dumps([_CODES_FORMAT, checkpoint.name, stat.st_size, stat.st_mtime_ns,
                                     _digest(data.train), _digest(data.val)]).encode())
    cache = rd.codes_cache(checkpoint, key.hexdigest()[:16])
    if cache.exists():
        try:
            cached = load_checkpoint(cache)
            fields = {f.name: cached[f.name] for f in dataclasses.fields(Codes)}
            return Codes(**{**fields, "image_shape": tuple(fields["image_shape"])})
        except (CheckpointError, KeyError) as exc:
            log.warning("ignoring unreadable code cache %s (%s); encoding again", cache, exc)

    train, train_sse, _ = _encode(model, data.train, batch_size, device)
    sigma = math.sqrt(train_sse / data.train.numel())
    val, val_sse, val_nats = _encode(model, data.val, batch_size, device, sigma=sigma)
    # On disk as before: the bottom grids as train and val, a two-level model's top grids apart.
    tops = {"train_top": train[0], "val_top": val[0]} if len(train) > 1 else {}
    codes = Codes(train[-1], val[-1], tuple(data.train.shape[1:]), model.quantizer.codebook_size, sigma,
                  val_sse / data.val.numel(), val_nats / len(data.val), int(state.get("epoch", 0)), **tops)
    save_checkpoint(cache, **{**dataclasses.asdict(codes), "image_shape": list(codes.image_shape)})
    return codes


def _digest(images: torch.Tensor) -> str:
    """A digest of a uint8 image tensor's shape and bytes (about 1 GB/s)."""
    digest = hashlib.blake2b(repr(tuple(images.shape)).encode(), digest_size=16)
    digest.update(memoryview(images.contiguous().numpy()).cast("B"))
    return digest.hexdigest()


@torch.no_grad()
def _encode(model, images_u8: torch.Tensor, batch_size: int, device, sigma: Optional[float] = None):
    """Codes (N, h, w) of each level (top first), the summed squared error of the clamped reconstructions and,
    with ``sigma``, the summed -log p(x | z) in nats."""
    grids, sse, nats = [], 0.0, 0.0
    for start in range(0, len(images_u8), batch_size):
        batch = images_u8[start : start + batch_size].to(device)
        x = to_model_space(batch)
        indices = model.encode(x)  # one grid per level, top first
        grids.append([level.cpu() for level in indices])
        reconstruction = model.decode(indices).float()
        sse += float((reconstruction.clamp(-0.5, 0.5) - x).pow(2).sum())
        if sigma is not None:
            nats += float(discretized_gaussian_nats(batch, reconstruction + 0.5, sigma).sum())
    return tuple(torch.cat(level) for level in zip(*grids)), sse, nats
