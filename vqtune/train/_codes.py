"""A dataset as code grids: encoded once by a trained VQ-VAE and cached next to its checkpoint."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from vqtune import run_dir as rd
from vqtune.data import load_images
from vqtune.errors import CheckpointError
from vqtune.train._build import load_vqvae
from vqtune.train._checkpoint import load_checkpoint, save_checkpoint
from vqtune.train._images import to_model_space

log = logging.getLogger("vqtune.train")

# Bump when what is cached changes meaning.
_CODES_FORMAT = 1


@dataclass(frozen=True)
class Codes:
    """Code grids of the train and val images, and what the bits/dim bound needs from stage 1.

    train: (N, h, w) int64; val: (M, h, w) int64.
    image_shape: (C, H, W) of the images the codes stand for.
    val_recon_mse: the VQ-VAE's reconstruction MSE on the val images (pixels in [0, 1]).
    codebook_size: K.
    """

    train: torch.Tensor
    val: torch.Tensor
    image_shape: tuple[int, int, int]
    val_recon_mse: float
    codebook_size: int

    def recon_nats_per_image(self) -> float:
        """-log p(x | z) of one image in nats under the decoder likelihood vqtune states:

        each subpixel is Gaussian around the reconstruction with one global variance sigma^2, set to its
        maximum-likelihood value (the val reconstruction MSE), discretized into 256 bins of width 1/255:
        -log p = 0.5 log(2 pi e sigma^2) + log 255 per subpixel on average.
        """
        per_subpixel = 0.5 * math.log(2 * math.pi * math.e * self.val_recon_mse) + math.log(255)
        return per_subpixel * math.prod(self.image_shape)


def encode_dataset(checkpoint: Path, batch_size: int = 256, device: str | torch.device = "cpu") -> Codes:
    """Encode the train and val images of ``checkpoint``'s own data config; cached in its directory.

    The cache file is keyed by the checkpoint's size and mtime, so retraining invalidates it.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise CheckpointError(f"prior.vqvae_checkpoint: {checkpoint}: no such checkpoint file; train stage 1 first")
    stat = checkpoint.stat()
    key = hashlib.sha256(json.dumps([_CODES_FORMAT, checkpoint.name, stat.st_size, stat.st_mtime_ns]).encode())
    cache = rd.codes_cache(checkpoint, key.hexdigest()[:16])
    if cache.exists():
        try:
            state = load_checkpoint(cache)
            return Codes(state["train"], state["val"], tuple(state["image_shape"]), state["val_recon_mse"],
                         state["codebook_size"])
        except (CheckpointError, KeyError) as exc:
            log.warning("ignoring unreadable code cache %s (%s); encoding again", cache, exc)

    model, config = load_vqvae(checkpoint, device=device)
    data = load_images(config.data)
    train = _encode(model, data.train, batch_size, device)
    val, mse = _encode(model, data.val, batch_size, device, with_mse=True)
    codes = Codes(train, val, tuple(data.train.shape[1:]), mse, model.quantizer.codebook_size)
    save_checkpoint(cache, train=codes.train, val=codes.val, image_shape=list(codes.image_shape),
                    val_recon_mse=codes.val_recon_mse, codebook_size=codes.codebook_size)
    return codes


@torch.no_grad()
def _encode(model, images_u8: torch.Tensor, batch_size: int, device, with_mse: bool = False):
    grids, sse = [], 0.0
    for start in range(0, len(images_u8), batch_size):
        x = to_model_space(images_u8[start : start + batch_size].to(device))
        indices = model.encode(x)
        grids.append(indices.cpu())
        if with_mse:
            sse += float((model.decode(indices).float().clamp(-0.5, 0.5) - x).pow(2).sum())
    codes = torch.cat(grids)
    return (codes, sse / images_u8.numel()) if with_mse else codes
