"""Stage 2: a prior (of ``prior.kind``) over the code grids of a trained VQ-VAE: its training pass and evaluation."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from vqtune import run_dir as rd
from vqtune.config import PriorConfig, TrainConfig, prior_config
from vqtune.models import CodesPrior, make_prior
from vqtune.train._checkpoint import PriorFields, fields_of, load_checkpoint
from vqtune.train._bound import bits_per_dim, unigram_code_nats
from vqtune.train._codes import encode_dataset
from vqtune.train._reporter import Reporter


def build_prior(prior: PriorConfig, codebook_size: int, top_downsample: Optional[int] = None) -> CodesPrior:
    """The ``prior.kind`` prior over one level's codes, or, with ``top_downsample``, one per level of a two-level
    model (the bottom one conditioned on the top codes)."""
    return make_prior(prior.kind, codebook_size, prior.architecture(), top_downsample)


def top_downsample_of(heights: Sequence[int]) -> Optional[int]:
    """The halvings from the bottom grid to the top one, from each level's grid height (top first); None for
    one level."""
    return None if len(heights) == 1 else (heights[-1] // heights[0]).bit_length() - 1


def nll_sum(model: CodesPrior, grids: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """-log p of the code ``grids`` (one tensor per level, top first) in nats, summed."""
    return model.nll_sum(tuple(grids))


class PriorStage:
    """Trains ``config.prior`` on the codes of ``checkpoint``. Reports, per epoch: ``train_nll`` and ``val_nll``
    (nats per latent), ``latents_per_s``, and the two-stage bound (see ``_bound.py``) with the trained prior,
    ``val_bits_per_dim``, next to its references with the unigram prior of the training codes
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
        self.train = tuple(grid.to(device) for grid in self.codes.grids("train"))
        self.val = tuple(grid.to(device) for grid in self.codes.grids("val"))
        self.top_downsample = top_downsample_of([grid.shape[1] for grid in self.train])  # as the checkpoint's model has them
        torch.manual_seed(config.seed)
        self.model = build_prior(prior, self.codes.codebook_size, self.top_downsample).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=prior.lr, weight_decay=prior.weight_decay)
        n_train, n_val = len(self.train[0]), len(self.val[0])
        self.batch_size = min(prior.batch_size, n_train)
        self.steps = n_train // self.batch_size
        shapes = " + ".join(f"{grid.shape[1]}x{grid.shape[2]}" for grid in self.train)
        self.data = f"{n_train} train / {n_val} val code grids of {shapes} from {self.checkpoint}"
        codes, k = self.codes, self.codes.codebook_size
        unigram = sum(unigram_code_nats(torch.bincount(train.flatten(), minlength=k),
                                        torch.bincount(val.flatten(), minlength=k))
                      for train, val in zip(codes.grids("train"), codes.grids("val"))) / n_val
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
        order = torch.randperm(len(self.train[0]), device=self.device)
        total = torch.zeros((), device=self.device)
        latents_per_grid = sum(grid.shape[1] * grid.shape[2] for grid in self.train)
        for step in range(self.steps):
            picks = order[step * batch_size : (step + 1) * batch_size]
            with autocast:
                loss = nll_sum(model, tuple(grid[picks] for grid in self.train)) / (len(picks) * latents_per_grid)
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
        latents = self.steps * batch_size * latents_per_grid
        return {"train_nll": train_nll, "latents_per_s": latents / (time.perf_counter() - t0)}, train_nll

    def evaluate(self) -> dict:
        val_nll = evaluate_prior(self.model, self.val, self.prior.batch_size)
        codes = self.codes
        return {"val_nll": val_nll,
                "val_bits_per_dim": bits_per_dim(val_nll * codes.latents, codes.val_distortion_nats, codes.subpixels),
                **self.references, "vqvae_epoch": codes.vqvae_epoch}

    def checkpoint_fields(self) -> PriorFields:
        bottom = self.train[-1]
        fields = PriorFields(prior=self.prior.model_dump(mode="json"), vqvae_checkpoint=str(self.checkpoint.resolve()),
                             codebook_size=self.codes.codebook_size, grid=[int(bottom.shape[1]), int(bottom.shape[2])])
        if self.top_downsample is not None:
            top = self.train[0]
            fields.update(top_grid=[int(top.shape[1]), int(top.shape[2])], top_downsample=self.top_downsample)
        return fields

    def finish(self, run_dir: Path) -> None:
        """Nothing beyond the checkpoints."""

    def snapshot(self, run_dir: Path, epoch: int) -> None:
        """Nothing: the prior's pictures are its samples, drawn once at the end (one pass per latent position)."""


@torch.no_grad()
def evaluate_prior(model: CodesPrior, codes: torch.Tensor | tuple[torch.Tensor, ...],
                   batch_size: int) -> float:
    """Mean negative log-likelihood of ``codes`` (N, h, w), or of one (N, h, w) grid per level, in nats per
    latent."""
    model.eval()
    grids = codes if isinstance(codes, tuple) else (codes,)
    total = torch.zeros((), dtype=torch.float64, device=grids[0].device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if grids[0].is_cuda else contextlib.nullcontext()
    for start in range(0, len(grids[0]), batch_size):
        with autocast:
            total += nll_sum(model, tuple(grid[start : start + batch_size] for grid in grids)).double()
    return float(total) / sum(grid.numel() for grid in grids)


def load_prior(path: Path, device: str | torch.device = "cpu") -> tuple[CodesPrior, PriorFields]:
    """The prior in a stage-2 checkpoint (eval mode) and the checkpoint's fields (:class:`PriorFields`:
    ``grid``, and for two levels ``top_grid``)."""
    state = load_checkpoint(path, map_location=device)
    with fields_of(path):
        model = build_prior(prior_config(state["prior"]), int(state["codebook_size"]),
                            state.get("top_downsample"))
        model.load_state_dict(state["model"])
    return model.to(device).eval(), state
