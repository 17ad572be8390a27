"""Stage 1: the VQ-VAE's training pass and its evaluation on the whole validation split."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Iterable, Optional

import torch
import torch.nn.functional as F

from vqtune import run_dir as rd
from vqtune.config import TrainConfig
from vqtune.data import ImageData, TrainingData, training_data
from vqtune.models import VQVAE, VQVAE2, CodeUsage
from vqtune.train._bound import bits_per_dim, discretized_gaussian_nats, unigram_code_nats
from vqtune.train._build import build_model
from vqtune.train._images import image_grid, to_model_space, to_uint8
from vqtune.train._reporter import Reporter

GRID_IMAGES = 8
LEVELS = ("top", "bottom")  # the names of each level's own metrics when there are two, top first


def _usages(model: VQVAE | VQVAE2, device) -> list[CodeUsage]:
    """One empty usage count per level of ``model``, top first."""
    return [CodeUsage(q.codebook_size, device=device) for q in model.quantizers]


def _usage_metrics(usage: list[CodeUsage]) -> dict:
    """val_perplexity, val_usage and val_active_codes of one level, or of two with each level's own."""
    active = sum(u.active_codes() for u in usage)
    metrics = {
        "val_perplexity": min(u.perplexity() for u in usage),
        "val_usage": active / sum(u.counts.numel() for u in usage),
        "val_active_codes": active,
    }
    if len(usage) > 1:
        for name, u in zip(LEVELS, usage):
            metrics[f"val_perplexity_{name}"] = u.perplexity()
            metrics[f"val_active_codes_{name}"] = u.active_codes()
    return metrics


class VQVAEStage:
    """Reports, per epoch: ``train_recon_mse``, ``train_commitment``, ``train_images_per_s``, the metrics of
    :func:`evaluate`, ``rate_bits`` (latent cells x log2 K: the fixed-length code of one image), and the
    two-stage bound with the unigram prior of the codes (see ``_bound.py``): ``val_code_bits`` (bits per
    validation image), ``val_distortion_bits_per_dim`` and ``val_bits_per_dim``. Both the unigram prior and the
    decoder's sigma come from the training split as the epoch saw it: the codes its batches were given, and
    the RMS error of their clamped reconstructions. Images are scaled to [-0.5, 0.5], so MSE is on the [0, 1]
    pixel scale."""

    name = "vqvae"
    label = ""
    section = "optim"
    files = rd.VQVAE
    selects = "val_recon_mse"

    def __init__(self, config: TrainConfig, data: TrainingData | ImageData, device: torch.device):
        """``data``: the run's training data, or images already loaded (held as :func:`training_data` holds
        them)."""
        self.config = config
        self.device = device
        self.cuda = device.type == "cuda"
        self.images = training_data(config.data, device, data) if isinstance(data, ImageData) else data
        self.data = self.images.description
        torch.manual_seed(config.seed)
        self.model = build_model(config, in_channels=self.images.image_shape[0]).to(
            device, memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.optim.lr,
                                          weight_decay=config.optim.weight_decay)
        self.batch_size = min(config.optim.batch_size, self.images.train_size)
        self.steps = self.images.train_size // self.batch_size  # the ragged last batch is dropped
        self.val_variance = self.images.val_variance()
        self.level_rate_bits = [h * w * math.log2(config.codebook_size) for h, w in config.grids]
        self.usage: Optional[list[CodeUsage]] = None
        self.train_usage: Optional[list[CodeUsage]] = None
        self.sigma = math.nan

    def train_epoch(self, epoch: int, reporter: Reporter) -> tuple[dict, float]:
        model, optimizer, batch_size, grad_clip = self.model, self.optimizer, self.batch_size, self.config.optim.grad_clip
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else contextlib.nullcontext()
        t0 = time.perf_counter()
        model.train()
        batches = self.images.epoch(batch_size)  # draws this epoch's order
        sums = torch.zeros(3, device=self.device)  # recon MSE, commitment, total loss: summed over steps
        clamped_sse = torch.zeros((), dtype=torch.float64, device=self.device)  # for the decoder's sigma
        self.train_usage = _usages(model, self.device)  # for the unigram prior of each level
        for step, x in enumerate(batches):
            with autocast:
                out = model(x)
            recon = F.mse_loss(out.reconstruction.float(), x)
            loss = recon + out.vq.loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            sums += torch.stack([recon.detach(), out.vq.commitment_loss, loss.detach()])
            clamped_sse += (out.reconstruction.detach().float().clamp(-0.5, 0.5) - x).pow(2).sum().double()
            for usage, level in zip(self.train_usage, out.levels):
                usage.update(level.counts)
            reporter.on_step(epoch, step + 1)
        train_recon, train_commitment, train_loss = (sums / max(self.steps, 1)).tolist()
        subpixels = math.prod(self.images.image_shape)
        self.sigma = math.sqrt(float(clamped_sse) / max(self.steps * batch_size * subpixels, 1))
        if self.cuda:
            torch.cuda.synchronize(self.device)
        images_per_s = self.steps * batch_size / (time.perf_counter() - t0)
        return ({"train_recon_mse": train_recon, "train_commitment": train_commitment,
                 "train_images_per_s": images_per_s}, train_loss)

    def evaluate(self) -> dict:
        self.usage = _usages(self.model, self.device)
        metrics = evaluate(self.model, self.images.val_batches(self.config.optim.batch_size), self.val_variance,
                           self.usage, sigma=self.sigma)
        images, subpixels = self.images.val_size, math.prod(self.images.image_shape)
        code_nats = sum(unigram_code_nats(train.counts, val.counts)
                        for train, val in zip(self.train_usage, self.usage)) / images
        distortion_nats = metrics.pop("distortion_nats")
        if len(self.level_rate_bits) > 1:
            metrics.update({f"rate_bits_{name}": bits for name, bits in zip(LEVELS, self.level_rate_bits)})
        return {
            **metrics,
            "rate_bits": sum(self.level_rate_bits),
            "val_code_bits": code_nats / math.log(2),
            "val_distortion_bits_per_dim": bits_per_dim(0.0, distortion_nats, subpixels),
            "val_bits_per_dim": bits_per_dim(code_nats, distortion_nats, subpixels),
        }

    def checkpoint_fields(self) -> dict:
        return {"in_channels": int(self.images.image_shape[0])}

    def finish(self, run_dir: Path) -> None:
        """The reconstruction grid and the code counts of the last evaluation, for the report and dashboard;
        nothing when no epoch ran in this process (a resumed run that had already finished)."""
        if self.usage is None:
            return
        save_reconstructions(self.model, self._grid_images(), run_dir / rd.RECONSTRUCTIONS)
        rd.write_code_usage(run_dir, self.usage[-1].counts.cpu().long().tolist())  # the bottom level's

    def snapshot(self, run_dir: Path, epoch: int) -> None:
        """The reconstruction grid of this epoch, ``reconstructions-epochNNN.png``: the same validation images
        every time, so a sequence shows the model learning."""
        save_reconstructions(self.model, self._grid_images(), run_dir / rd.epoch_file(rd.RECONSTRUCTIONS, epoch))

    def _grid_images(self) -> torch.Tensor:
        # Spread over the split: neighbouring val images are often crops of the same photo.
        return self.images.val_images(GRID_IMAGES)


@torch.no_grad()
def evaluate(model: VQVAE | VQVAE2, batches: Iterable[torch.Tensor], variance: float,
             usage: Optional[list[CodeUsage]] = None, sigma: Optional[float] = None) -> dict:
    """Reconstruction error and code usage of ``model`` over all of ``batches``, uint8 (B, C, H, W) each (a
    split: :meth:`TrainingData.val_batches <vqtune.data.TrainingData.val_batches>`, or ``images.split(64)``):
    ``val_recon_mse``, ``val_nmse``, ``val_psnr``, ``val_perplexity``, ``val_usage``, ``val_active_codes``,
    ``val_images_per_s``,
    and with ``sigma`` also ``distortion_nats``: -log p(x | z) per image under the discretised Gaussian decoder.

    A two-level model also reports each level's ``val_perplexity_top`` / ``_bottom`` and ``val_active_codes_top``
    / ``_bottom``; then ``val_active_codes`` counts both levels, ``val_usage`` is of their 2K codes and
    ``val_perplexity`` is the smaller level's (the one closer to collapse).

    ``usage``, when given, holds one empty :class:`CodeUsage` per level (top first); they are filled with the
    code counts of the whole split.
    """
    model.eval()
    device = next(model.parameters()).device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    usage = usage if usage is not None else _usages(model, device)
    sse = torch.zeros((), dtype=torch.float64, device=device)
    nats = torch.zeros((), dtype=torch.float64, device=device)
    images = subpixels = 0
    t0 = time.perf_counter()
    for batch in batches:
        batch = batch.to(device)
        images, subpixels = images + len(batch), subpixels + batch.numel()
        x = to_model_space(batch)
        with autocast:
            out = model(x)
        sse += (out.reconstruction.float() - x).pow(2).sum().double()
        for level_usage, level in zip(usage, out.levels):
            level_usage.update(level.counts)
        if sigma is not None:
            nats += discretized_gaussian_nats(batch, out.reconstruction.float() + 0.5, sigma).sum()
    mse = float(sse) / subpixels
    seconds = time.perf_counter() - t0
    extra = {"distortion_nats": float(nats) / images} if sigma is not None else {}
    return {
        **extra,
        "val_recon_mse": mse,
        "val_nmse": mse / variance if variance > 0 else math.nan,
        "val_psnr": -10 * math.log10(mse) if mse != 0 else math.inf,  # NaN or -inf for a diverged model
        **_usage_metrics(usage),
        "val_images_per_s": images / seconds,
    }


@torch.no_grad()
def save_reconstructions(model: VQVAE, images_u8: torch.Tensor, path: Path) -> None:
    """Write a PNG: ``images_u8`` (N, C, H, W) in the top row, their reconstructions below."""
    model.eval()
    x = to_model_space(images_u8)
    with torch.autocast("cuda", dtype=torch.bfloat16) if x.is_cuda else contextlib.nullcontext():
        recon = model(x).reconstruction
    image_grid([images_u8, to_uint8(recon)]).save(path)
