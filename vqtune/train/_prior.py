"""Stage 2: a Gated PixelCNN prior over the code grids of a trained VQ-VAE: its training pass and evaluation."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vqtune import run_dir as rd
from vqtune.config import PriorConfig, TrainConfig
from vqtune.models import GatedPixelCNN
from vqtune.train._checkpoint import load_checkpoint
from vqtune.train._bound import bits_per_dim, unigram_code_nats
from vqtune.train._codes import encode_dataset
from vqtune.train._reporter import Reporter


def build_prior(prior: PriorConfig, codebook_size: int) -> GatedPixelCNN:
    return GatedPixelCNN(codebook_size, channels=prior.channels, layers=prior.layers, kernel=prior.kernel,
                         dropout=prior.dropout)


class PriorStage:
    """Trains ``config.prior`` on the codes of ``checkpoint``. Reports, per epoch: ``train_nll`` and ``val_nll``
    (nats per latent), ``latents_per_s``, and the two-stage bound (see ``_bound.py``) with the PixelCNN as the
    prior, ``val_bits_per_dim``, next to its references with the unigram prior of the training codes
    (``val_bits_per_dim_unigram``) and the uniform one (``val_bits_per_dim_uniform``: log K per latent), all
    three with the same decoder term ``val_distortion_bits_per_dim``."""

    name = "prior"
    label = "prior "
    section = "prior"
    files = rd.PRIOR
    selects = "val_nll"

    def __init__(self, config: TrainConfig, checkpoint: Path, device: torch.device):
        self.config = config
        self.prior = prior = config.prior
        self.device = device
        self.cuda = device.type == "cuda"
        self.checkpoint = Path(checkpoint)
        self.codes = encode_dataset(self.checkpoint, device=device)
        self.train, self.val = self.codes.train.to(device), self.codes.val.to(device)
        torch.manual_seed(config.seed)
        self.model = build_prior(prior, self.codes.codebook_size).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=prior.lr, weight_decay=prior.weight_decay)
        self.batch_size = min(prior.batch_size, len(self.train))
        self.steps = len(self.train) // self.batch_size
        self.data = (f"{len(self.train)} train / {len(self.val)} val code grids of {self.train.shape[1]}x"
                     f"{self.train.shape[2]} from {self.checkpoint}")
        codes, k = self.codes, self.codes.codebook_size
        unigram = unigram_code_nats(torch.bincount(codes.train.flatten(), minlength=k),
                                    torch.bincount(codes.val.flatten(), minlength=k)) / len(codes.val)
        self.references = {
            "val_distortion_bits_per_dim": bits_per_dim(0.0, codes.val_distortion_nats, codes.subpixels),
            "val_bits_per_dim_unigram": bits_per_dim(unigram, codes.val_distortion_nats, codes.subpixels),
            "val_bits_per_dim_uniform": bits_per_dim(codes.latents * math.log(k), codes.val_distortion_nats,
                                                     codes.subpixels),
        }

    def train_epoch(self, epoch: int, reporter: Reporter) -> tuple[dict, float]:
        model, optimizer, batch_size, grad_clip = self.model, self.optimizer, self.batch_size, self.prior.grad_clip
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else contextlib.nullcontext()
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(self.train), device=self.device)
        total = torch.zeros((), device=self.device)
        for step in range(self.steps):
            batch = self.train[order[step * batch_size : (step + 1) * batch_size]]
            with autocast:
                logits = model(batch)
            loss = F.cross_entropy(logits.float(), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            total += loss.detach()
            reporter.on_step(epoch, step + 1)
        train_nll = float(total) / max(self.steps, 1)
        if self.cuda:
            torch.cuda.synchronize(self.device)
        latents = self.steps * batch_size * self.train.shape[1] * self.train.shape[2]
        return {"train_nll": train_nll, "latents_per_s": latents / (time.perf_counter() - t0)}, train_nll

    def evaluate(self) -> dict:
        val_nll = evaluate_prior(self.model, self.val, self.prior.batch_size)
        codes = self.codes
        return {"val_nll": val_nll,
                "val_bits_per_dim": bits_per_dim(val_nll * codes.latents, codes.val_distortion_nats, codes.subpixels),
                **self.references}

    def checkpoint_fields(self) -> dict:
        return {"prior": self.prior.model_dump(mode="json"), "vqvae_checkpoint": str(self.checkpoint.resolve()),
                "codebook_size": self.codes.codebook_size, "grid": [int(self.train.shape[1]), int(self.train.shape[2])]}

    def finish(self, run_dir: Path) -> None:
        """Nothing beyond the checkpoints."""

    def snapshot(self, run_dir: Path, epoch: int) -> None:
        """Nothing: the prior's pictures are its samples, drawn once at the end (one pass per latent position)."""


@torch.no_grad()
def evaluate_prior(model: GatedPixelCNN, codes: torch.Tensor, batch_size: int) -> float:
    """Mean negative log-likelihood of ``codes`` (N, h, w) in nats per latent."""
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=codes.device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if codes.is_cuda else contextlib.nullcontext()
    for start in range(0, len(codes), batch_size):
        batch = codes[start : start + batch_size]
        with autocast:
            logits = model(batch)
        total += F.cross_entropy(logits.float(), batch, reduction="sum").double()
    return float(total) / codes.numel()


def load_prior(path: Path, device: str | torch.device = "cpu") -> tuple[GatedPixelCNN, dict]:
    """The prior in a stage-2 checkpoint (eval mode) and the checkpoint's other fields."""
    state = load_checkpoint(path, map_location=device)
    model = build_prior(PriorConfig.model_validate(state["prior"]), int(state["codebook_size"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state
