"""Vector quantisation of encoder outputs (van den Oord et al. 2017, arXiv 1711.00937, eq. 3 and App. A.1), with
the options that keep a codebook alive: factorized codes looked up in a low-dimensional space and l2-normalised
(cosine) codes (Yu et al. 2021, arXiv 2110.04627), and the rotation trick in place of the straight-through
estimator (Fifty et al. 2024, arXiv 2410.06424)."""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from vqtune.models.quantizers._codebook import (
    EMAUpdate,
    KMeansInit,
    LossUpdate,
    Restarts,
    no_init,
    no_restarts,
)
from vqtune.models.quantizers._estimators import ESTIMATORS
from vqtune.models.quantizers._protocol import QuantizerOutput, perplexity_of


def _as_is(x: torch.Tensor) -> torch.Tensor:
    return x


def _unit(x: torch.Tensor) -> torch.Tensor:
    """l2 normalisation along dim 1."""
    return F.normalize(x, dim=1)


def _unit_copy(x: torch.Tensor) -> torch.Tensor:
    """l2 normalisation of a copy along dim 1: F.normalize keeps its input for the backward pass, and a dead-code
    restart later in the same forward writes into the codebook parameter itself (autograd would refuse the
    modified input)."""
    return F.normalize(x.clone(), dim=1)


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook with a straight-through (or rotation-trick) estimator.

    Args:
        codebook_size: K, number of codes.
        embedding_dim: D, channels of the encoder output (and of the quantized result).
        beta: commitment cost, the weight of ||z_e - sg[e]||^2.
        ema: update codes by exponential moving averages (App. A.1, :class:`EMAUpdate`) instead of the codebook
            loss (:class:`LossUpdate`).
        decay: EMA decay gamma.
        eps: Laplace smoothing epsilon of the EMA cluster sizes.
        dead_code_steps: a code unused for this many training steps is re-seeded from a random encoder
            output of the current batch (:class:`Restarts`; 0 disables restarts).
        kmeans_init: set the codebook by k-means on the first training batch (:class:`KMeansInit`).
        codebook_dim: look codes up in this many dimensions: a learned 1x1 projection of z_e in, and of the
            chosen code back out to D (None or D: no projection).
        normalize: l2-normalise the (projected) encoder outputs and the codes before the nearest-code search and
            in the losses: the nearest code is the one of largest cosine. Under EMA the codes are normalised
            again after each update.
        estimator: ``straight_through`` (z_q = z + sg[e - z]) or ``rotation`` (:func:`rotate_to`).

    Each option picks its rule once, here: the codebook update, the restarts, the initialisation, the
    estimator and the normalisation are the attributes ``codebook_rule``, ``restarts``, ``initialize``,
    ``estimate`` and ``to_code_norm``.

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

        unit, unit_copy = (_unit, _unit_copy) if normalize else (_as_is, _as_is)
        self.to_code_norm = unit
        self.codebook_rule = EMAUpdate(decay, eps, unit) if ema else LossUpdate(unit_copy)
        self.restarts = Restarts(dead_code_steps) if dead_code_steps > 0 else no_restarts
        self.initialize = KMeansInit(unit) if kmeans_init else no_init
        self.estimate = ESTIMATORS[estimator]

        bound = 1.0 / codebook_size
        embedding = torch.empty(codebook_size, self.codebook_dim).uniform_(-bound, bound)
        self.codebook_rule.register(self, unit(embedding))
        self.register_buffer("steps_unused", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("initialized", torch.tensor(not kmeans_init))

    @classmethod
    def from_options(cls, codebook_size: int, embedding_dim: int, **options: Any) -> "VectorQuantizer":
        """The quantizer of the config section ``quantizer`` with ``kind: vq``: its options are the keyword
        arguments of the constructor."""
        return cls(codebook_size, embedding_dim, **options)

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
            if self.training:
                self.initialize(self, flat.detach())

            indices = self.nearest(flat.detach())  # (B*H*W,)
            counts = torch.bincount(indices, minlength=self.codebook_size).to(flat.dtype)
            e_k = F.embedding(indices, self.codes()).view(b, h, w, c).permute(0, 3, 1, 2)
            if self.training:  # after the lookup: this batch is quantized with the codes it was matched to
                self._update_codebook(flat.detach(), indices, counts)
            commitment_loss = F.mse_loss(z, e_k.detach())
            codebook_loss = F.mse_loss(z.detach(), e_k)
            loss = self.codebook_rule.loss(self.beta * commitment_loss, codebook_loss)
            quantized = self.estimate(z, e_k.detach())
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
        return self.to_code_norm(z)

    def codes(self) -> torch.Tensor:
        """The (K, c) codebook as the search sees it (normalised with ``normalize``; a trained parameter
        without EMA keeps its own norm and is normalised here)."""
        return self.codebook_rule.codes(self)

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
        """After the lookup of a training batch: the codebook rule's update, then the restarts."""
        self.codebook_rule.update(self, flat, indices, counts)
        self.restarts(self, flat, counts)

    def extra_repr(self) -> str:
        return (
            f"codebook_size={self.codebook_size}, embedding_dim={self.embedding_dim}, beta={self.beta}, "
            f"ema={self.ema}, decay={self.decay}, dead_code_steps={self.dead_code_steps}, "
            f"codebook_dim={self.codebook_dim}, normalize={self.normalize}, estimator={self.estimator}"
        )
