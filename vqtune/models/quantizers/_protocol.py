"""What an autoencoder needs of a quantizer, and what a quantizer gives back: :class:`Quantizer`,
:class:`QuantizerOutput`, and the code-usage figures computed from its counts."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch


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


@runtime_checkable
class Quantizer(Protocol):
    """What :class:`~vqtune.models.VQVAE` and :class:`~vqtune.models.VQVAE2` use of a quantizer (an
    ``nn.Module``): its K codes, the forward pass of training and evaluation, and the two halves of it that the
    prior's stage needs, encoder outputs to indices and indices back to what the decoder reads.

    A kind of quantizer is a class with these members and :meth:`from_options`, one line in
    :data:`~vqtune.models.quantizers.QUANTIZERS`, and the options of its config section.
    """

    codebook_size: int  # K: indices are in [0, K)
    embedding_dim: int  # D: channels of the encoder output and of the quantized result

    @classmethod
    def from_options(cls, codebook_size: int, embedding_dim: int, **options: Any) -> "Quantizer":
        """The quantizer of K = ``codebook_size`` codes on D = ``embedding_dim`` channels, with its config
        section's own options (plain values, as the section holds them)."""
        ...

    def __call__(self, z_e: torch.Tensor) -> QuantizerOutput:
        """(B, D, H, W) encoder outputs -> :class:`QuantizerOutput`; updates the codebook when training."""
        ...

    def encode(self, z_e: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) encoder outputs -> (B, H, W) code indices."""
        ...

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, H, W) code indices -> the (B, D, H, W) codes the decoder reads."""
        ...


def perplexity_of(counts: torch.Tensor) -> torch.Tensor:
    """exp(-sum p log p) of the usage distribution p = counts / sum(counts); K for uniform usage, 1 for one code."""
    p = counts.double() / counts.sum().clamp_min(1)
    return torch.exp(-torch.special.xlogy(p, p).sum()).float()


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
