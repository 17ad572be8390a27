"""The rules that keep a :class:`~vqtune.models.VectorQuantizer`'s codebook: how it learns (:class:`EMAUpdate`
or :class:`LossUpdate`, the same interface), when unused codes are re-seeded (:class:`Restarts`) and how it
starts (:class:`KMeansInit`). The quantizer chooses each once, at construction; the tensors stay the
quantizer's own (its ``state_dict`` is the checkpoint's), and each rule reads and writes them there."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

KMEANS_ITERS = 10  # Lloyd iterations of the k-means initialisation (converged on a first batch by then)

Normalize = Callable[[torch.Tensor], torch.Tensor]  # (K, c) or (B, c, H, W) -> the same, along dim 1


class EMAUpdate:
    """The codes follow exponential moving averages of the encoder outputs matched to them (van den Oord et al.
    2017, App. A.1): N_i <- g N_i + (1-g) n_i ; m_i <- g m_i + (1-g) sum_{z -> i} z ; e_i = m_i / N_i, with
    N Laplace-smoothed. The codebook is a buffer: the codebook loss is reported, not optimised.

    Args:
        decay: g, in [0, 1).
        eps: Laplace smoothing epsilon of the cluster sizes N.
        normalize: applied to the codes after each update (l2 normalisation for cosine codes, or identity).
    """

    def __init__(self, decay: float, eps: float, normalize: Normalize):
        self.decay = decay
        self.eps = eps
        self.normalize = normalize

    def register(self, vq: nn.Module, embedding: torch.Tensor) -> None:
        """Give ``vq`` its (K, c) codebook ``embedding`` and the statistics of this rule."""
        vq.register_buffer("embedding", embedding)
        # Start the EMA statistics non-zero and consistent with the codebook (e = m / N):
        # an all-zero N makes the first smoothed division ~0/0.
        vq.register_buffer("ema_cluster_size", torch.ones(embedding.shape[0]))
        vq.register_buffer("ema_embed_sum", embedding.clone())

    def codes(self, vq: nn.Module) -> torch.Tensor:
        """The (K, c) codebook as the search sees it (already normalised by the update when asked)."""
        return vq.embedding

    def loss(self, commitment_term: torch.Tensor, codebook_loss: torch.Tensor) -> torch.Tensor:
        """The quantizer's loss: the commitment term alone (the averages move the codes)."""
        return commitment_term

    def update(self, vq: nn.Module, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        """One training batch: ``flat`` (N, c) encoder outputs in code space, ``indices`` (N,) their codes,
        ``counts`` (K,) how many went to each."""
        embed_sum = torch.zeros_like(vq.ema_embed_sum).index_add_(0, indices, flat)
        vq.ema_cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        vq.ema_embed_sum.mul_(self.decay).add_(embed_sum, alpha=1 - self.decay)
        # Laplace smoothing on a copy: N itself keeps the unsmoothed average.
        n = vq.ema_cluster_size.sum()
        smoothed = (vq.ema_cluster_size + self.eps) / (n + vq.codebook_size * self.eps) * n
        vq.embedding.copy_(self.normalize(vq.ema_embed_sum / smoothed.unsqueeze(1)))

    def reseed(self, vq: nn.Module, dead: torch.Tensor, seeds: torch.Tensor) -> None:
        """Replace the codes where ``dead`` (K,) is true by the rows of ``seeds`` (K, c), each a fresh average
        of one point."""
        mask = dead.unsqueeze(1)
        vq.embedding.copy_(torch.where(mask, seeds, vq.embedding))
        vq.ema_cluster_size.masked_fill_(dead, 1.0)
        vq.ema_embed_sum.copy_(torch.where(mask, seeds, vq.ema_embed_sum))

    def set_codes(self, vq: nn.Module, codes: torch.Tensor) -> None:
        """Replace the whole codebook by ``codes`` (K, c), each a fresh average of one point."""
        vq.embedding.copy_(codes)
        vq.ema_cluster_size.fill_(1.0)
        vq.ema_embed_sum.copy_(codes)


class LossUpdate:
    """The codebook is a parameter trained by the codebook loss ||sg[z_e] - e_k||^2 (van den Oord et al. 2017,
    eq. 3), added to the commitment term.

    Args:
        normalize: applied to the parameter each time the codes are read (l2 normalisation of a copy for cosine
            codes, or identity): a trained parameter keeps its own norm.
    """

    def __init__(self, normalize: Normalize):
        self.normalize = normalize

    def register(self, vq: nn.Module, embedding: torch.Tensor) -> None:
        """Give ``vq`` its (K, c) codebook ``embedding``, a parameter."""
        vq.embedding = nn.Parameter(embedding)

    def codes(self, vq: nn.Module) -> torch.Tensor:
        """The (K, c) codebook as the search sees it."""
        return self.normalize(vq.embedding)

    def loss(self, commitment_term: torch.Tensor, codebook_loss: torch.Tensor) -> torch.Tensor:
        """The quantizer's loss: the commitment term and the codebook loss."""
        return commitment_term + codebook_loss

    def update(self, vq: nn.Module, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        """Nothing between steps: the optimizer moves the codes."""

    def reseed(self, vq: nn.Module, dead: torch.Tensor, seeds: torch.Tensor) -> None:
        """Replace the codes where ``dead`` (K,) is true by the rows of ``seeds`` (K, c)."""
        vq.embedding.copy_(torch.where(dead.unsqueeze(1), seeds, vq.embedding))

    def set_codes(self, vq: nn.Module, codes: torch.Tensor) -> None:
        """Replace the whole codebook by ``codes`` (K, c)."""
        vq.embedding.copy_(codes)


CodebookUpdate = EMAUpdate | LossUpdate


class Restarts:
    """A code unused for ``steps`` training steps in a row is re-seeded from a random encoder output of the
    current batch (its count of unused steps is the quantizer's ``steps_unused`` buffer)."""

    def __init__(self, steps: int):
        self.steps = steps

    def __call__(self, vq: nn.Module, flat: torch.Tensor, counts: torch.Tensor) -> None:
        """After a training batch of ``flat`` (N, c) encoder outputs that chose each code ``counts`` (K,) times."""
        vq.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        self.restart(vq, vq.steps_unused >= self.steps, flat)

    def restart(self, vq: nn.Module, dead: torch.Tensor, flat: torch.Tensor) -> None:
        """Re-seed the codes where ``dead`` (K,) is true with random rows of ``flat`` (N, c).

        Written with masks rather than indices so that a CUDA step never waits to learn how many died.
        """
        seeds = flat[torch.randint(flat.shape[0], (vq.codebook_size,), device=flat.device)]
        vq.codebook_rule.reseed(vq, dead, seeds)
        vq.steps_unused.masked_fill_(dead, 0)


def no_restarts(vq: nn.Module, flat: torch.Tensor, counts: torch.Tensor) -> None:
    """``dead_code_steps`` 0: unused codes are left as they are."""


class KMeansInit:
    """The codebook is set by k-means (Lloyd's iterations from k-means++ seeds) on the first training batch;
    the quantizer's ``initialized`` buffer records that it was, so that a loaded checkpoint is not set again.

    Args:
        normalize: applied to the centres (l2 normalisation for cosine codes, or identity).
        iters: Lloyd iterations.
    """

    def __init__(self, normalize: Normalize, iters: int = KMEANS_ITERS):
        self.normalize = normalize
        self.iters = iters

    def __call__(self, vq: nn.Module, flat: torch.Tensor) -> None:
        """Before a training batch of ``flat`` (N, c) encoder outputs in code space."""
        if not bool(vq.initialized):
            self.fit(vq, flat)

    @torch.no_grad()
    def fit(self, vq: nn.Module, flat: torch.Tensor) -> None:
        """Set the codebook of ``vq`` to the k-means centres of ``flat`` (N, c)."""
        k = vq.codebook_size
        centers = kmeans_plus_plus(flat, k)
        for _ in range(self.iters):
            dist = (centers * centers).sum(1) - 2.0 * flat @ centers.t()
            assign = dist.argmin(1)
            counts = torch.bincount(assign, minlength=k).to(flat.dtype)
            sums = torch.zeros_like(centers).index_add_(0, assign, flat)
            used = counts > 0
            centers[used] = sums[used] / counts[used].unsqueeze(1)
        vq.codebook_rule.set_codes(vq, self.normalize(centers))
        vq.initialized.fill_(True)


def no_init(vq: nn.Module, flat: torch.Tensor) -> None:
    """No ``kmeans_init``: the codebook keeps its uniform random start."""


def kmeans_plus_plus(points: torch.Tensor, k: int) -> torch.Tensor:
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
