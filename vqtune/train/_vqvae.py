"""Stage 1: the VQ-VAE's training pass and its evaluation on the whole validation split."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from vqtune import run_dir as rd
from vqtune.config import TrainConfig
from vqtune.data import ImageData
from vqtune.models import VQVAE, CodeUsage
from vqtune.train._build import build_model
from vqtune.train._images import image_grid, to_model_space, to_uint8
from vqtune.train._reporter import Reporter

GRID_IMAGES = 8


class VQVAEStage:
    """Reports, per epoch: ``train_recon_mse``, ``train_commitment``, ``train_images_per_s`` and the metrics of
    :func:`evaluate`. Images are scaled to [-0.5, 0.5], so MSE is on the [0, 1] pixel scale."""

    name = "vqvae"
    label = ""
    section = "optim"
    files = rd.VQVAE
    selects = "val_recon_mse"

    def __init__(self, config: TrainConfig, data: ImageData, device: torch.device):
        self.config = config
        self.device = device
        self.cuda = device.type == "cuda"
        self.train_u8, self.val_u8 = data.train, data.val
        if self.cuda:  # the whole dataset lives on the GPU as uint8: no host-to-device copy per step
            self.train_u8, self.val_u8 = self.train_u8.to(device), self.val_u8.to(device)
        self.data = data.description
        torch.manual_seed(config.seed)
        self.model = build_model(config, in_channels=self.train_u8.shape[1]).to(
            device, memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.optim.lr,
                                          weight_decay=config.optim.weight_decay)
        self.batch_size = min(config.optim.batch_size, len(self.train_u8))
        self.steps = len(self.train_u8) // self.batch_size  # drop the ragged last batch: every step the same shape
        self.val_variance = float(self.val_u8.double().div(255).var())
        self.usage: Optional[CodeUsage] = None

    def train_epoch(self, epoch: int, reporter: Reporter) -> tuple[dict, float]:
        model, optimizer, batch_size, grad_clip = self.model, self.optimizer, self.batch_size, self.config.optim.grad_clip
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else contextlib.nullcontext()
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(self.train_u8), device=self.device)
        sums = torch.zeros(3, device=self.device)  # recon MSE, commitment, total loss: summed over steps
        for step in range(self.steps):
            x = to_model_space(self.train_u8[order[step * batch_size : (step + 1) * batch_size]])
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
            reporter.on_step(epoch, step + 1)
        train_recon, train_commitment, train_loss = (sums / max(self.steps, 1)).tolist()
        if self.cuda:
            torch.cuda.synchronize(self.device)
        images_per_s = self.steps * batch_size / (time.perf_counter() - t0)
        return ({"train_recon_mse": train_recon, "train_commitment": train_commitment,
                 "train_images_per_s": images_per_s}, train_loss)

    def evaluate(self) -> dict:
        self.usage = CodeUsage(self.model.quantizer.codebook_size, device=self.device)
        return evaluate(self.model, self.val_u8, self.config.optim.batch_size, self.val_variance, self.usage)

    def checkpoint_fields(self) -> dict:
        return {"in_channels": int(self.train_u8.shape[1])}

    def finish(self, run_dir: Path) -> None:
        """The reconstruction grid and the code counts of the last evaluation, for the report and dashboard;
        nothing when no epoch ran in this process (a resumed run that had already finished)."""
        if self.usage is None:
            return
        # Spread over the split: neighbouring val images are often crops of the same photo.
        val = self.val_u8
        picks = torch.linspace(0, len(val) - 1, min(GRID_IMAGES, len(val)), device=val.device).long()
        save_reconstructions(self.model, val[picks], run_dir / rd.RECONSTRUCTIONS)
        rd.write_code_usage(run_dir, self.usage.counts.cpu().long().tolist())


@torch.no_grad()
def evaluate(model: VQVAE, images_u8: torch.Tensor, batch_size: int, variance: float,
             usage: Optional[CodeUsage] = None) -> dict:
    """Reconstruction error and code usage of ``model`` over all of ``images_u8`` (N, C, H, W) uint8:
    ``val_recon_mse``, ``val_nmse``, ``val_psnr``, ``val_perplexity``, ``val_usage``, ``val_images_per_s``.

    ``usage``, when given, must be empty; it is filled with the code counts of the whole split.
    """
    model.eval()
    device = images_u8.device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    usage = usage if usage is not None else CodeUsage(model.quantizer.codebook_size, device=device)
    sse = torch.zeros((), dtype=torch.float64, device=device)
    t0 = time.perf_counter()
    for start in range(0, len(images_u8), batch_size):
        x = to_model_space(images_u8[start : start + batch_size])
        with autocast:
            out = model(x)
        sse += (out.reconstruction.float() - x).pow(2).sum().double()
        usage.update(out.vq.counts)
    mse = float(sse) / images_u8.numel()
    seconds = time.perf_counter() - t0
    return {
        "val_recon_mse": mse,
        "val_nmse": mse / variance if variance > 0 else math.nan,
        "val_psnr": -10 * math.log10(mse) if mse != 0 else math.inf,  # NaN or -inf for a diverged model
        "val_perplexity": usage.perplexity(),
        "val_usage": usage.usage_fraction(),
        "val_images_per_s": len(images_u8) / seconds,
    }


@torch.no_grad()
def save_reconstructions(model: VQVAE, images_u8: torch.Tensor, path: Path) -> None:
    """Write a PNG: ``images_u8`` (N, C, H, W) in the top row, their reconstructions below."""
    model.eval()
    x = to_model_space(images_u8)
    with torch.autocast("cuda", dtype=torch.bfloat16) if x.is_cuda else contextlib.nullcontext():
        recon = model(x).reconstruction
    image_grid([images_u8, to_uint8(recon)]).save(path)
