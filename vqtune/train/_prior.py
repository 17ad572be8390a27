"""Stage 2: fit a Gated PixelCNN prior over the code grids of a trained VQ-VAE."""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from vqtune.config import PriorConfig, TrainConfig
from vqtune.errors import ConfigError, TrainingDiverged
from vqtune.models import GatedPixelCNN
from vqtune.train import _run_dir as rd
from vqtune.train._build import resolve_device
from vqtune.train._checkpoint import load_checkpoint, save_checkpoint
from vqtune.train._codes import Codes, encode_dataset
from vqtune.train._fit import FitResult
from vqtune.train._reporter import Reporter, RunInfo

PRIOR_LAST = "prior_last.pt"
PRIOR_BEST = "prior_best.pt"
PRIOR_METRICS = "prior_metrics.jsonl"


def build_prior(prior: PriorConfig, codebook_size: int) -> GatedPixelCNN:
    return GatedPixelCNN(codebook_size, channels=prior.channels, layers=prior.layers, kernel=prior.kernel,
                         dropout=prior.dropout)


def fit_prior(
    config: TrainConfig,
    reporter: Optional[Reporter] = None,
    *,
    checkpoint: Optional[Path] = None,
    run_dir: Optional[Path] = None,
) -> FitResult:
    """Train ``config.prior`` on the codes of ``checkpoint`` (default: ``config.prior.vqvae_checkpoint``).

    ``run_dir``: write into this existing run directory (after stage 1); default a fresh ``config.run_dir``.
    After each epoch the reporter gets ``train_nll`` and ``val_nll`` (nats per latent), ``val_bits_per_dim``
    (the image bound: prior cross-entropy plus the decoder's reconstruction NLL, see
    :meth:`Codes.recon_nats_per_image`, over H*W*C*ln 2), ``latents_per_s`` and ``epoch_seconds``.
    """
    prior = config.prior
    if prior is None:
        raise ConfigError("prior: this config has no prior section; add one to train stage 2")
    checkpoint = checkpoint or prior.vqvae_checkpoint
    if checkpoint is None:
        raise ConfigError("prior.vqvae_checkpoint: give the stage-1 checkpoint to train the prior on")
    checkpoint = Path(checkpoint)
    reporter = reporter or Reporter()
    device = resolve_device(config.device)
    cuda = device.type == "cuda"
    codes = encode_dataset(checkpoint, device=device)
    train, val = codes.train.to(device), codes.val.to(device)

    if run_dir is None:
        run_dir = rd.fresh_run_dir(config.run_dir)
        rd.write_config(run_dir, config.model_dump(mode="json"))
    torch.manual_seed(config.seed)
    model = build_prior(prior, codes.codebook_size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=prior.lr)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    batch_size = min(prior.batch_size, len(train))
    steps = len(train) // batch_size
    latents_per_grid = train.shape[1] * train.shape[2]
    reporter.on_start(RunInfo(run_dir, str(device), f"{len(train)} train / {len(val)} val code grids of "
                              f"{train.shape[1]}x{train.shape[2]} from {checkpoint}",
                              sum(p.numel() for p in model.parameters()), 1, prior.epochs, steps))
    history: list[dict] = []
    best = math.inf
    stopped = False
    for epoch in range(1, prior.epochs + 1):
        torch.manual_seed(config.seed * 1_000_003 + epoch)
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), device=device)
        total = torch.zeros((), device=device)
        for step in range(steps):
            batch = train[order[step * batch_size : (step + 1) * batch_size]]
            with autocast:
                logits = model(batch)
            loss = F.cross_entropy(logits.float(), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            reporter.on_step(epoch, step + 1)
        train_nll = float(total) / max(steps, 1)
        train_seconds = time.perf_counter() - t0
        if not math.isfinite(train_nll):
            raise TrainingDiverged(f"epoch {epoch}: prior loss became {train_nll}; lower prior.lr (now {prior.lr})",
                                   epoch)
        val_nll = evaluate_prior(model, val, prior.batch_size)
        if not math.isfinite(val_nll):
            raise TrainingDiverged(f"epoch {epoch}: prior validation loss became {val_nll}; lower prior.lr "
                                   f"(now {prior.lr})", epoch)
        metrics = {
            "epoch": epoch,
            "train_nll": train_nll,
            "val_nll": val_nll,
            "val_bits_per_dim": bits_per_dim(val_nll, codes),
            "latents_per_s": steps * batch_size * latents_per_grid / train_seconds,
            "epoch_seconds": time.perf_counter() - t0,
        }
        history.append(metrics)
        rd.append_metrics(run_dir, metrics, PRIOR_METRICS)
        save_checkpoint(run_dir / PRIOR_LAST, prior=prior.model_dump(mode="json"), model=model.state_dict(),
                        vqvae_checkpoint=str(checkpoint.resolve()), codebook_size=codes.codebook_size,
                        grid=[int(train.shape[1]), int(train.shape[2])], epoch=epoch, metrics=history,
                        optimizer=optimizer.state_dict())
        if val_nll < best:
            best = val_nll
            shutil.copyfile(run_dir / PRIOR_LAST, run_dir / PRIOR_BEST)
        if reporter.report(epoch, metrics):
            stopped = True
            break
    return FitResult(run_dir, model, history, stopped)


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


def bits_per_dim(nll_per_latent: float, codes: Codes) -> float:
    """The image bound in bits per subpixel: (h*w*nll + recon NLL) / (H*W*C*ln 2)."""
    latents = codes.val.shape[1] * codes.val.shape[2]
    nats = nll_per_latent * latents + codes.recon_nats_per_image()
    return nats / (math.prod(codes.image_shape) * math.log(2))


def load_prior(path: Path, device: str | torch.device = "cpu") -> tuple[GatedPixelCNN, dict]:
    """The prior in a stage-2 checkpoint (eval mode) and the checkpoint's other fields."""
    state = load_checkpoint(path, map_location=device)
    model = build_prior(PriorConfig.model_validate(state["prior"]), int(state["codebook_size"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state
