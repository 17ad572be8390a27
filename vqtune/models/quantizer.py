"""Vector quantisation of encoder outputs (van den Oord et al. 2017, arXiv 1711.00937, eq. 3 and App. A.1), with
the options that keep a codebook alive: factorized codes looked up in a low-dimensional space and l2-normalised
(cosine) codes (Yu et al. 2021, arXiv 2110.04627), and the rotation trick in place of the straight-through
estimator (Fifty et al. 2024, arXiv 2410.06424)."""

from __future__ import annotations

from typing import Literal, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn


KMEANS_ITERS = 10  # Lloyd iterations of the k-means initialisation (converged on a first batch by then)
ESTIMATORS = ("straight_through", "rotation")


class QuantizerOutput(NamedTuple):
    """Result of a quantizer's forward (:class:`VectorQuantizer`, :class:`FiniteScalarQuantizer`).

    quantized: (B, D, H, W) z_q, with the gradient of z_e passed through (straight-through or rotated).
    indices: (B, H, W) int64 code chosen for each latent cell.
    loss: scalar, codebook term (absent under EMA) + beta * commitment term (zero for FSQ).
    commitment_loss: scalar ||z_e - sg[e_k]||^2 (mean over elements), before beta.
    codebook_loss: scalar ||sg[z_e] - e_k||^2 (reported even under EMA, where it is not optimised).
    perplexity: scalar exp(entropy) of code usage in this batch.
    counts: (K,) how often each code was chosen in this batch.

    The losses are measured where the codes live: after the projection to ``codebook_dim`` and the
    normalisation, when the quantizer has them.
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
    """Nearest-neighbour codebook with a straight-through (or rotation-trick) estimator.

    Args:
        codebook_size: K, number of codes.
        embedding_dim: D, channels of the encoder output (and of the quantized result).
        beta: commitment cost, the weight of ||z_e - sg[e]||^2.
        ema: update codes by exponential moving averages (App. A.1) instead of the codebook loss.
        decay: EMA decay gamma.
        eps: Laplace smoothing epsilon of the EMA cluster sizes.
        dead_code_steps: a code unused for this many training steps is re-seeded from a random encoder
            output of the current batch (0 disables restarts).
        kmeans_init: set the codebook by k-means on the first training batch.
        codebook_dim: look codes up in this many dimensions: a learned 1x1 projection of z_e in, and of the
            chosen code back out to D (None or D: no projection).
        normalize: l2-normalise the (projected) encoder outputs and the codes before the nearest-code search and
            in the losses: the nearest code is the one of largest cosine. Under EMA the codes are normalised
            again after each update.
        estimator: ``straight_through`` (z_q = z + sg[e - z]) or ``rotation`` (:func:`rotate_to`).

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
        codebook_dim: Optional[int] = None,
        normalize: bool = False,
        estimator: Literal["straight_through", "rotation"] = "straight_through",
    ):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
        if codebook_dim is not None and codebook_dim < 1:
            raise ValueError(f"codebook_dim must be positive, got {codebook_dim}")
        self.codebook_size = codebook_size
        self.embedding_dim = embedding_dim
        self.codebook_dim = codebook_dim or embedding_dim
        self.beta = beta
        self.ema = ema
        self.decay = decay
        self.eps = eps
        self.dead_code_steps = dead_code_steps
        self.kmeans_init = kmeans_init
        self.normalize = normalize
        self.estimator = estimator
        factorized = self.codebook_dim != embedding_dim
        self.project_in = nn.Conv2d(embedding_dim, self.codebook_dim, 1) if factorized else None
        self.project_out = nn.Conv2d(self.codebook_dim, embedding_dim, 1) if factorized else None

        bound = 1.0 / codebook_size
        embedding = torch.empty(codebook_size, self.codebook_dim).uniform_(-bound, bound)
        if normalize:
            embedding = F.normalize(embedding, dim=1)
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
            z = self._to_code_space(z_e.float())  # (B, c, H, W), c = codebook_dim
            c = z.shape[1]
            flat = z.permute(0, 2, 3, 1).reshape(-1, c)  # (B*H*W, c)
            if self.training and self.kmeans_init and not bool(self.initialized):
                self._kmeans_init(flat.detach())

            indices = self.nearest(flat.detach())  # (B*H*W,)
            counts = torch.bincount(indices, minlength=self.codebook_size).to(flat.dtype)
            e_k = F.embedding(indices, self.codes()).view(b, h, w, c).permute(0, 3, 1, 2)
            if self.training:  # after the lookup: this batch is quantized with the codes it was matched to
                self._update_codebook(flat.detach(), indices, counts)
            commitment_loss = F.mse_loss(z, e_k.detach())
            codebook_loss = F.mse_loss(z.detach(), e_k)
            loss = self.beta * commitment_loss
            if not self.ema:
                loss = loss + codebook_loss
            if self.estimator == "rotation":
                quantized = rotate_to(z, e_k.detach())
            else:
                quantized = z + (e_k - z).detach()  # straight-through: forward e_k, gradient to z
            if self.project_out is not None:
                quantized = self.project_out(quantized)
        return QuantizerOutput(
            quantized=quantized,
            indices=indices.view(b, h, w),
            loss=loss,
            commitment_loss=commitment_loss.detach(),
            codebook_loss=codebook_loss.detach(),
            perplexity=perplexity_of(counts),
            counts=counts,
        )

    def _to_code_space(self, z_e: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> (B, c, H, W): projected to codebook_dim and normalised, as the options ask."""
        z = self.project_in(z_e) if self.project_in is not None else z_e
        return F.normalize(z, dim=1) if self.normalize else z

    def codes(self) -> torch.Tensor:
        """The (K, c) codebook as the search sees it (normalised with ``normalize``; a trained parameter
        without EMA keeps its own norm and is normalised here)."""
        if self.normalize and not self.ema:
            # Normalise a copy: F.normalize keeps its input for the backward pass, and a dead-code restart later
            # in the same forward writes into the parameter itself (autograd would refuse the modified input).
            return F.normalize(self.embedding.clone(), dim=1)
        return self.embedding

    @torch.no_grad()
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of ``flat`` (N, c), already in code space:
        argmin ||z||^2 - 2 z.e + ||e||^2 (with normalised vectors: the largest cosine)."""
        e = self.codes().float()
        squared = (flat * flat).sum(1, keepdim=True) + (e * e).sum(1)  # (N, K)
        return torch.addmm(squared, flat, e.t(), alpha=-2.0).argmin(1)

    @torch.no_grad()
    def encode(self, z_e: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) encoder outputs -> (B, H, W) code indices."""
        z = self._to_code_space(z_e.float())
        b, c, h, w = z.shape
        return self.nearest(z.permute(0, 2, 3, 1).reshape(-1, c)).view(b, h, w)

    @torch.no_grad()
    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for ``indices`` (B, H, W) as a (B, D, H, W) tensor (projected back out to D)."""
        codes = F.embedding(indices, self.codes()).permute(0, 3, 1, 2).contiguous()
        return self.project_out(codes) if self.project_out is not None else codes

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
            codes = self.ema_embed_sum / smoothed.unsqueeze(1)
            self.embedding.copy_(F.normalize(codes, dim=1) if self.normalize else codes)
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
        if self.normalize:
            centers = F.normalize(centers, dim=1)
        self.embedding.copy_(centers)
        if self.ema:
            self.ema_cluster_size.fill_(1.0)
            self.ema_embed_sum.copy_(centers)
        self.initialized.fill_(True)

    def extra_repr(self) -> str:
        return (
            f"codebook_size={self.codebook_size}, embedding_dim={self.embedding_dim}, beta={self.beta}, "
            f"ema={self.ema}, decay={self.decay}, dead_code_steps={self.dead_code_steps}, "
            f"codebook_dim={self.codebook_dim}, normalize={self.normalize}, estimator={self.estimator}"
        )


def rotate_to(z: torch.Tensor, e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """The rotation trick (Fifty et al. 2024): carry the gradient of ``e`` back to ``z`` through the rotation and
    rescaling that takes ``z`` to ``e``, instead of copying it unchanged.

    Along dim 1 of ``z`` and ``e`` (B, c, H, W): u = z/|z|, q = e/|e|, r = (u + q)/|u + q|,
    R = I - 2 r r^T + 2 q u^T (the rotation taking u to q in their plane) and lambda = |e|/|z|. The result is
    sg[lambda R] z: its value is e (exactly: the float residue is replaced by e itself), and its gradient
    with respect to z is lambda R^T times the upstream gradient. ``e`` must not need a gradient.
    """
    with torch.no_grad():
        z_norm = z.norm(dim=1, keepdim=True).clamp_min(eps)
        e_norm = e.norm(dim=1, keepdim=True)
        u, q = z / z_norm, e / e_norm.clamp_min(eps)
        r = F.normalize(u + q, dim=1, eps=eps)  # u = -q: r = 0, and R u = u + 2q = q all the same
        scale = e_norm / z_norm
    rotated = scale * (z - 2 * r * (r * z).sum(1, keepdim=True) + 2 * q * (u * z).sum(1, keepdim=True))
    return rotated + (e - rotated).detach()


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

    def active_codes(self) -> int:
        """How many codes were chosen at least once."""
        return int((self.counts > 0).sum())



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
