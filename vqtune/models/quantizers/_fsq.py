"""Finite scalar quantization (Mentzer et al. 2023, arXiv 2309.15505): no codebook to learn, none to collapse."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from vqtune.models.quantizers._protocol import QuantizerOutput, perplexity_of

# The paper's recommended levels for a codebook of about 2^bits codes (Table 1).
RECOMMENDED_LEVELS = {8: [8, 6, 5], 10: [8, 5, 5, 5], 12: [7, 5, 5, 5, 5], 14: [8, 8, 8, 6, 5], 16: [8, 8, 8, 5, 5, 5]}


class FiniteScalarQuantizer(nn.Module):
    """Each of ``len(levels)`` channels is bounded and rounded to one of ``levels[i]`` values; the code is the
    tuple of those values, numbered in mixed radix, so K = prod(levels) and every code can be reached.

    Per channel with L levels: half = (L - 1)(1 + 1e-3)/2, offset = 0.5 for even L (else 0),
    shift = atanh(offset / half); bounded = tanh(z + shift) * half - offset; the integer is round(bounded) in
    [-(L // 2), L - 1 - L // 2] (a straight-through gradient), the output integer / (L // 2), in [-1, 1].
    Index = sum_i (integer_i + L_i // 2) * prod_{j<i} L_j, a bijection onto [0, K).

    Args:
        levels: levels per channel, each at least 2 (e.g. [8, 5, 5, 5]: K = 1000).
        embedding_dim: D, channels of the encoder output; a learned 1x1 projection to ``len(levels)`` channels
            and back when they differ.

    There is no codebook loss and no commitment term: ``loss`` is zero, and the result is otherwise the
    :class:`~vqtune.models.VectorQuantizer`'s (indices in [0, K), counts, perplexity).

    Example:
        >>> fsq = FiniteScalarQuantizer([8, 5, 5, 5], embedding_dim=4)
        >>> out = fsq(torch.randn(2, 4, 3, 5))
        >>> out.quantized.shape, int(out.indices.max()) < fsq.codebook_size == 1000
        (torch.Size([2, 4, 3, 5]), True)
    """

    def __init__(self, levels: Sequence[int], embedding_dim: int):
        super().__init__()
        levels = [int(level) for level in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"levels must be a non-empty list of integers >= 2, got {levels}")
        self.levels_list = levels
        self.codebook_size = math.prod(levels)
        self.embedding_dim = embedding_dim
        channels = len(levels)
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.long), persistent=False)
        basis = [math.prod(levels[:i]) for i in range(channels)]
        self.register_buffer("basis", torch.tensor(basis, dtype=torch.long), persistent=False)
        self.project_in = nn.Conv2d(embedding_dim, channels, 1) if channels != embedding_dim else None
        self.project_out = nn.Conv2d(channels, embedding_dim, 1) if channels != embedding_dim else None

    @classmethod
    def from_options(cls, codebook_size: int, embedding_dim: int, levels: Sequence[int]) -> "FiniteScalarQuantizer":
        """The quantizer of the config section ``quantizer`` with ``kind: fsq``; ``codebook_size`` must be the
        product of the ``levels``."""
        quantizer = cls(levels, embedding_dim)
        if quantizer.codebook_size != codebook_size:
            raise ValueError(f"levels {quantizer.levels_list} give K = {quantizer.codebook_size} codes, "
                             f"not {codebook_size}")
        return quantizer

    def _per_channel(self, values: torch.Tensor) -> torch.Tensor:
        return values.view(1, -1, 1, 1)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """(B, c, H, W) -> the same, channel i squashed into (-(L_i // 2) - 0.5, L_i - 1 - L_i // 2 + 0.5)."""
        levels = self._per_channel(self.levels).to(z.dtype)
        # Just over (L - 1)/2: the shift atanh(offset / half) needs offset < half, which two levels (offset 0.5)
        # miss at (L - 1)/2 and under it (0.5 / 0.4995 > 1: a NaN).
        half = (levels - 1) * (1 + 1e-3) / 2
        offset = torch.where(self._per_channel(self.levels) % 2 == 0, 0.5, 0.0).to(z.dtype)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        """Quantize ``z_e`` of shape (B, D, H, W)."""
        b, d, h, w = z_e.shape
        if d != self.embedding_dim:
            raise ValueError(f"expected {self.embedding_dim} channels, got {d}")
        with torch.autocast(device_type=z_e.device.type, enabled=False):
            z = self.project_in(z_e.float()) if self.project_in is not None else z_e.float()
            bounded = self.bound(z)
            integers = bounded + (torch.round(bounded) - bounded).detach()  # straight-through rounding
            quantized = integers / self._per_channel(self.levels // 2).to(z.dtype)
            indices = self._index(torch.round(bounded.detach()))
            if self.project_out is not None:
                quantized = self.project_out(quantized)
        counts = torch.bincount(indices.flatten(), minlength=self.codebook_size).float()
        zero = z.new_zeros(())
        return QuantizerOutput(quantized=quantized, indices=indices, loss=zero, commitment_loss=zero,
                               codebook_loss=zero, perplexity=perplexity_of(counts), counts=counts)

    def _index(self, integers: torch.Tensor) -> torch.Tensor:
        """(B, c, H, W) rounded integers -> (B, H, W) mixed-radix indices."""
        digits = integers.long() + self._per_channel(self.levels // 2)
        return (digits * self._per_channel(self.basis)).sum(1)

    def _integers(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, H, W) indices -> (B, c, H, W) integers: the inverse of :meth:`_index`."""
        digits = (indices.unsqueeze(1) // self._per_channel(self.basis)) % self._per_channel(self.levels)
        return digits - self._per_channel(self.levels // 2)

    @torch.no_grad()
    def encode(self, z_e: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) encoder outputs -> (B, H, W) code indices."""
        z = self.project_in(z_e.float()) if self.project_in is not None else z_e.float()
        return self._index(torch.round(self.bound(z)))

    @torch.no_grad()
    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for ``indices`` (B, H, W) as a (B, D, H, W) tensor."""
        codes = self._integers(indices).float() / self._per_channel(self.levels // 2).float()
        return self.project_out(codes) if self.project_out is not None else codes

    def extra_repr(self) -> str:
        return f"levels={self.levels_list}, codebook_size={self.codebook_size}, embedding_dim={self.embedding_dim}"
