"""Stage 1: fit a VQ-VAE, one epoch at a time, evaluating on the whole validation split after each."""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from vqtune.config import TrainConfig
from vqtune.data import ImageData, load_images
from vqtune.errors import CheckpointError, TrainingDiverged
from vqtune.models import VQVAE, CodeUsage
from vqtune.train._build import build_model, resolve_device
from vqtune.train import _run_dir as rd
from vqtune.train._checkpoint import load_checkpoint, save_checkpoint
from vqtune.train._images import image_grid, to_uint8
from vqtune.train._reporter import Reporter, RunInfo

GRID_IMAGES = 8


@dataclass
class FitResult:
    """What a finished (or stopped) run leaves: its directory, the model (a VQVAE, or a GatedPixelCNN for
    stage 2) and every epoch's metrics."""

    run_dir: Path
    model: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


def fit_vqvae(
    config: TrainConfig,
    reporter: Optional[Reporter] = None,
    *,
    resume: bool = False,
    data: Optional[ImageData] = None,
) -> FitResult:
    """Train a VQ-VAE as ``config`` says, writing its run directory; returns when done or asked to stop.

    After every epoch the reporter gets: ``train_recon_mse``, ``val_recon_mse``, ``val_nmse`` (val MSE /
    variance of the val pixels), ``val_psnr`` (dB, pixel range 1), ``val_perplexity`` and ``val_usage``
    (over the whole validation split), ``train_commitment``, ``train_images_per_s``, ``val_images_per_s``,
    ``epoch_seconds``. Images are scaled to [-0.5, 0.5], so MSE is on the [0, 1] pixel scale.

    With ``resume=True`` and a ``last.pt`` in ``config.run_dir`` the run continues after its last epoch
    (and gives the same result as an uninterrupted run); otherwise a fresh run directory is used.
    ``data`` may pass already loaded images (tests, searches that share them).
    """
    reporter = reporter or Reporter()
    device = resolve_device(config.device)
    cuda = device.type == "cuda"
    data = data if data is not None else load_images(config.data)
    train_u8, val_u8 = data.train, data.val
    if cuda:  # the whole dataset lives on the GPU as uint8: no host-to-device copy per step
        train_u8, val_u8 = train_u8.to(device), val_u8.to(device)

    torch.manual_seed(config.seed)
    model = build_model(config, in_channels=train_u8.shape[1]).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)

    history: list[dict] = []
    start_epoch = 1
    last = Path(config.run_dir) / rd.LAST_CHECKPOINT
    if resume and last.exists():
        run_dir = Path(config.run_dir)
        state = load_checkpoint(last, map_location=device)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError) as exc:
            raise CheckpointError(
                f"{last}: the checkpoint does not fit this config's model ({str(exc).splitlines()[0]}); "
                "resume without changing model.* or quantizer.* keys"
            ) from None
        history = list(state["metrics"])
        start_epoch = int(state["epoch"]) + 1
        # The checkpoint is the truth: a run killed after writing an epoch's metrics line but before its
        # checkpoint would otherwise list that epoch twice.
        (run_dir / rd.METRICS_FILE).unlink(missing_ok=True)
        for metrics in history:
            rd.append_metrics(run_dir, metrics)
    else:
        run_dir = rd.fresh_run_dir(config.run_dir)
    rd.write_config(run_dir, config.model_dump(mode="json"))  # on resume: the config now in force

    batch_size = min(config.optim.batch_size, len(train_u8))
    steps = len(train_u8) // batch_size  # drop the ragged last batch: every step has the same shape
    reporter.on_start(
        RunInfo(run_dir, str(device), data.description, sum(p.numel() for p in model.parameters()),
                start_epoch, config.optim.epochs, steps)
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    val_variance = float(val_u8.double().div(255).var())
    best = min((h["val_recon_mse"] for h in history), default=math.inf)
    stopped = False
    usage: Optional[CodeUsage] = None

    for epoch in range(start_epoch, config.optim.epochs + 1):
        # Seeding per epoch makes a resumed run identical to an uninterrupted one.
        torch.manual_seed(config.seed * 1_000_003 + epoch)
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_u8), device=device)
        sums = torch.zeros(3, device=device)  # recon SSE-mean * B, commitment * B, total loss
        for step in range(steps):
            x = to_model_space(train_u8[order[step * batch_size : (step + 1) * batch_size]])
            with autocast:
                out = model(x)
            recon = F.mse_loss(out.reconstruction.float(), x)
            loss = recon + out.vq.loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.optim.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optimizer.step()
            sums += torch.stack([recon.detach(), out.vq.commitment_loss, loss.detach()])
            reporter.on_step(epoch, step + 1)
        train_recon, train_commitment, train_loss = (sums / max(steps, 1)).tolist()
        if cuda:
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - t0
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"epoch {epoch}: training loss became {train_loss}; lower optim.lr (now {config.optim.lr}) "
                f"or set optim.grad_clip",
                epoch,
            )

        metrics = {"epoch": epoch, "train_recon_mse": train_recon, "train_commitment": train_commitment}
        usage = CodeUsage(model.quantizer.codebook_size, device=device)
        metrics.update(evaluate(model, val_u8, config.optim.batch_size, val_variance, usage))
        metrics["train_images_per_s"] = steps * batch_size / train_seconds
        metrics["epoch_seconds"] = time.perf_counter() - t0
        if not math.isfinite(metrics["val_recon_mse"]):
            raise TrainingDiverged(f"epoch {epoch}: validation loss became {metrics['val_recon_mse']}; "
                                   f"lower optim.lr (now {config.optim.lr})", epoch)
        history.append(metrics)
        rd.append_metrics(run_dir, metrics)
        save_checkpoint(
            run_dir / rd.LAST_CHECKPOINT,
            config=config.model_dump(mode="json"),
            epoch=epoch,
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            metrics=history,
            in_channels=int(train_u8.shape[1]),
        )
        if metrics["val_recon_mse"] < best:
            best = metrics["val_recon_mse"]
            shutil.copyfile(run_dir / rd.LAST_CHECKPOINT, run_dir / rd.BEST_CHECKPOINT)
        if reporter.report(epoch, metrics):
            stopped = True
            break

    # Spread over the split: neighbouring val images are often crops of the same photo.
    picks = torch.linspace(0, len(val_u8) - 1, min(GRID_IMAGES, len(val_u8)), device=val_u8.device).long()
    save_reconstructions(model, val_u8[picks], run_dir / rd.RECONSTRUCTIONS)
    if history and usage is not None:  # the code counts of the last evaluation, for usage histograms
        rd.write_code_usage(run_dir, usage.counts.cpu().long().tolist())
    return FitResult(run_dir=run_dir, model=model, history=history, stopped_early=stopped)


@torch.no_grad()
def evaluate(model: VQVAE, images_u8: torch.Tensor, batch_size: int, variance: float,
             usage: Optional[CodeUsage] = None) -> dict:
    """Reconstruction error and code usage of ``model`` over all of ``images_u8`` (N, C, H, W) uint8.

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


def to_model_space(batch_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 in [-0.5, 0.5], channels-last (faster convolutions on CPU and GPU)."""
    return batch_u8.float().div_(255.0).sub_(0.5).contiguous(memory_format=torch.channels_last)
