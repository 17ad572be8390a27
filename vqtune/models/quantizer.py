"""Vector quantisation of encoder outputs (van den Oord et al. 2017, arXiv 1711.00937, eq. 3 and App. A.1)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


KMEANS_ITERS = 10  # Lloyd iterations of the k-means initialisation (converged on a first batch by then)


class QuantizerOutput(NamedTuple):
    """Result of :meth:`VectorQuantizer.forward`.

    quantized: (B, D, H, W) z_q with the straight-through gradient of z_e.
    indices: (B, H, W) int64 code chosen for each latent cell.
    loss: scalar, codebook term (absent under EMA) + beta * commitment term.
    commitment_loss: scalar ||z_e - sg[e_k]||^2 (mean over elements), before beta.
    codebook_loss: scalar ||sg[z_e] - e_k||^2 (reported even under EMA, where it is not optimised).
    perplexity: scalar exp(entropy) of code usage in this batch.
    counts: (K,) how often each code was chosen in this batch.
    """

    quantized: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor
    commitment_loss: torch.Tensor
    codebook_loss: torch.Tensor
    perplexity: torch.Tensor
    counts: torch.Tensor


def perplexity_of(counts: torch.Tensor) -> torch.Tensor:
    """exp(-sum p log p) of the usage distribution p = counts / sum(counts); K for uniform usage, 1 for one code."""
    p = counts.double() / counts.sum().clamp_min(1)
    return torch.exp(-torch.special.xlogy(p, p).sum()).float()


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook with a straight-through estimator.

    Args:
        codebook_size: K, number of codes.
        embedding_dim: D, size of each code.
        beta: commitment cost, the weight of ||z_e - sg[e]||^2.
        ema: update codes by exponential moving averages (App. A.1) instead of the codebook loss.
        decay: EMA decay gamma.
        eps: Laplace smoothing epsilon of the EMA cluster sizes.
        dead_code_steps: a code unused for this many training steps is re-seeded from a random encoder
            output of the current batch (0 disables restarts).
        kmeans_init: set the codebook by k-means on the first training batch.

    Example:
        >>> vq = VectorQuantizer(codebook_size=16, embedding_dim=4)
        >>> out = vq(torch.randn(2, 4, 3, 5))
        >>> out.quantized.shape, out.indices.shape
        (torch.Size([2, 4, 3, 5]), torch.Size([2, 3, 5]))
    """

    def __init__(
        self,
        codebook_size: int,
        embedding_dim: int,
        beta: float = 0.25,
        ema: bool = True,
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_code_steps: int = 0,
        kmeans_init: bool = False,
    ):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.codebook_size = codebook_size
        self.embedding_dim = embedding_dim
        self.beta = beta
        self.ema = ema
        self.decay = decay
        self.eps = eps
        self.dead_code_steps = dead_code_steps
        self.kmeans_init = kmeans_init

        bound = 1.0 / codebook_size
        embedding = torch.empty(codebook_size, embedding_dim).uniform_(-bound, bound)
        if ema:
            self.register_buffer("embedding", embedding)
            # Start the EMA statistics non-zero and consistent with the codebook (e = m / N):
            # an all-zero N makes the first smoothed division ~0/0.
            self.register_buffer("ema_cluster_size", torch.ones(codebook_size))
            self.register_buffer("ema_embed_sum", embedding.clone())
        else:
            self.embedding = nn.Parameter(embedding)
        self.register_buffer("steps_unused", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("initialized", torch.tensor(not kmeans_init))

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        """Quantize ``z_e`` of shape (B, D, H, W); updates the codebook when training (EMA, restarts)."""
        b, d, h, w = z_e.shape
        if d != self.embedding_dim:
            raise ValueError(f"expected {self.embedding_dim} channels, got {d}")
        # Distances and codebook statistics in float32 even under bf16 autocast: argmin over close codes
        # is not stable at 8 bits of mantissa.
        with torch.autocast(device_type=z_e.device.type, enabled=False):
            z_e = z_e.float()
            flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (B*H*W, D)
            if self.training and self.kmeans_init and not bool(self.initialized):
                self._kmeans_init(flat.detach())

            indices = self.nearest(flat.detach())  # (B*H*W,)
            counts = torch.bincount(indices, minlength=self.codebook_size).to(flat.dtype)
            e_k = F.embedding(indices, self.embedding).view(b, h, w, d).permute(0, 3, 1, 2)
            if self.training:  # after the lookup: this batch is quantized with the codes it was matched to
                self._update_codebook(flat.detach(), indices, counts)
            commitment_loss = F.mse_loss(z_e, e_k.detach())
            codebook_loss = F.mse_loss(z_e.detach(), e_k)
            loss = self.beta * commitment_loss
            if not self.ema:
                loss = loss + codebook_loss
            quantized = z_e + (e_k - z_e).detach()  # straight-through: forward e_k, gradient to z_e
        return QuantizerOutput(
            quantized=quantized,
            indices=indices.view(b, h, w),
            loss=loss,
            commitment_loss=commitment_loss.detach(),
            codebook_loss=codebook_loss.detach(),
            perplexity=perplexity_of(counts),
            counts=counts,
        )

    @torch.no_grad()
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of ``flat`` (N, D): argmin ||z||^2 - 2 z.e + ||e||^2."""
        e = self.embedding.float()
        squared = (flat * flat).sum(1, keepdim=True) + (e * e).sum(1)  # (N, K)
        return torch.addmm(squared, flat, e.t(), alpha=-2.0).argmin(1)

    @torch.no_grad()
    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for ``indices`` (B, H, W) as a (B, D, H, W) tensor."""
        return F.embedding(indices, self.embedding).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def _update_codebook(self, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        if self.ema:
            # N_i <- g N_i + (1-g) n_i ;  m_i <- g m_i + (1-g) sum_{z -> i} z
            embed_sum = torch.zeros_like(self.ema_embed_sum).index_add_(0, indices, flat)
            self.ema_cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.ema_embed_sum.mul_(self.decay).add_(embed_sum, alpha=1 - self.decay)
            # Laplace smoothing on a copy: N itself keeps the unsmoothed average.
            n = self.ema_cluster_size.sum()
            smoothed = (self.ema_cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
            self.embedding.copy_(self.ema_embed_sum / smoothed.unsqueeze(1))
        if self.dead_code_steps > 0:
            self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
            self._restart(self.steps_unused >= self.dead_code_steps, flat)

    def _restart(self, dead: torch.Tensor, flat: torch.Tensor) -> None:
        """Re-seed the codes where ``dead`` (K,) is true with random encoder outputs of this batch.

        Written with masks rather than indices so that a CUDA step never waits to learn how many died.
        """
        seeds = flat[torch.randint(flat.shape[0], (self.codebook_size,), device=flat.device)]
        mask = dead.unsqueeze(1)
        self.embedding.copy_(torch.where(mask, seeds, self.embedding))
        if self.ema:
            self.ema_cluster_size.masked_fill_(dead, 1.0)
            self.ema_embed_sum.copy_(torch.where(mask, seeds, self.ema_embed_sum))
        self.steps_unused.masked_fill_(dead, 0)

    @torch.no_grad()
    def _kmeans_init(self, flat: torch.Tensor) -> None:
        """Lloyd's k-means, seeded by k-means++, on the first batch's encoder outputs ``flat`` (N, D)."""
        k = self.codebook_size
        centers = _kmeans_plus_plus(flat, k)
        for _ in range(KMEANS_ITERS):
            dist = (centers * centers).sum(1) - 2.0 * flat @ centers.t()
            assign = dist.argmin(1)
            counts = torch.bincount(assign, minlength=k).to(flat.dtype)
            sums = torch.zeros_like(centers).index_add_(0, assign, flat)
            used = counts > 0
            centers[used] = sums[used] / counts[used].unsqueeze(1)
        self.embedding.copy_(centers)
        if self.ema:
            self.ema_cluster_size.fill_(1.0)
            self.ema_embed_sum.copy_(centers)
        self.initialized.fill_(True)

    def extra_repr(self) -> str:
        return (
            f"codebook_size={self.codebook_size}, embedding_dim={self.embedding_dim}, beta={self.beta}, "
            f"ema={self.ema}, decay={self.decay}, dead_code_steps={self.dead_code_steps}"
        )


class CodeUsage:
    """Accumulates code counts over many batches: perplexity and usage fraction of a whole split.

    Per-batch perplexity depends on the batch size; this is the figure to compare between runs.
    """

    def __init__(self, codebook_size: int, device: torch.device | str = "cpu"):
        self.counts = torch.zeros(codebook_size, dtype=torch.float64, device=device)

    def update(self, indices_or_counts: torch.Tensor) -> None:
        """Add a batch: either code indices of any shape or a (K,) count vector from QuantizerOutput."""
        if indices_or_counts.is_floating_point():
            self.counts += indices_or_counts.to(self.counts)
        else:
            self.counts += torch.bincount(indices_or_counts.flatten(), minlength=self.counts.numel()).to(self.counts)

    def perplexity(self) -> float:
        return float(perplexity_of(self.counts))

    def usage_fraction(self) -> float:
        """Share of codes chosen at least once."""
        return float((self.counts > 0).double().mean())



def _kmeans_plus_plus(points: torch.Tensor, k: int) -> torch.Tensor:
    """k seeds from ``points`` (N, D), each drawn with probability proportional to its squared distance
    to the nearest seed so far (Arthur & Vassilvitskii 2007). With N < k the seeds repeat, jittered."""
    first = torch.randint(points.shape[0], (1,), device=points.device)
    centers = [points[first]]
    nearest = ((points - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        weights = nearest.clamp_min(0)
        if float(weights.sum()) <= 0:  # every point is already a seed
            weights = torch.ones_like(weights)
        centers.append(points[torch.multinomial(weights, 1)])
        nearest = torch.minimum(nearest, ((points - centers[-1]) ** 2).sum(1))
    seeds = torch.cat(centers).clone()
    return seeds + 1e-4 * points.std() * torch.randn_like(seeds)
