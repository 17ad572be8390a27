"""The prior of a two-level VQ-VAE-2: a Gated PixelCNN over the top codes, and one over the bottom codes
conditioned on the top codes (Razavi et al. 2019, section 3.2), each in raster order."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from vqtune.models.pixelcnn import GatedPixelCNN


class TwoLevelPrior(nn.Module):
    """p(top, bottom) = p(top) p(bottom | top).

    The condition of the bottom prior is the top codes' embeddings (``channels`` wide) repeated up to the bottom
    grid (each top cell covers 2^top_downsample x 2^top_downsample bottom cells); the bottom PixelCNN's
    conditioning stack reads it and adds it to every gate.

    Args:
        codebook_size: K of both levels.
        top_downsample: halvings from the bottom grid to the top one.
        channels, layers, kernel, dropout: of both PixelCNNs.

    Example:
        >>> prior = TwoLevelPrior(codebook_size=16, top_downsample=1, channels=8, layers=2)
        >>> top, bottom = prior(torch.randint(0, 16, (2, 2, 3)), torch.randint(0, 16, (2, 4, 6)))
        >>> top.shape, bottom.shape
        (torch.Size([2, 16, 2, 3]), torch.Size([2, 16, 4, 6]))
    """

    def __init__(self, codebook_size: int, top_downsample: int, channels: int = 64, layers: int = 8,
                 kernel: int = 3, dropout: float = 0.0):
        super().__init__()
        self.codebook_size = codebook_size
        self.factor = 2**top_downsample
        self.top = GatedPixelCNN(codebook_size, channels, layers, kernel, dropout)
        self.top_embedding = nn.Embedding(codebook_size, channels)
        self.bottom = GatedPixelCNN(codebook_size, channels, layers, kernel, dropout, condition_channels=channels)

    def condition(self, top: torch.Tensor) -> torch.Tensor:
        """(B, h, w) top codes -> (B, channels, h * 2^t, w * 2^t): their embeddings, repeated to the bottom grid."""
        embedded = self.top_embedding(top).permute(0, 3, 1, 2)
        return embedded.repeat_interleave(self.factor, dim=2).repeat_interleave(self.factor, dim=3)

    def forward(self, top: torch.Tensor, bottom: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, h, w) top and (B, H, W) bottom codes -> their (B, K, h, w) and (B, K, H, W) logits."""
        return self.top(top), self.bottom(bottom, condition=self.condition(top))

    def nll_sum(self, top: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
        """-log p(top, bottom) in nats, summed over the batch and both grids."""
        top_logits, bottom_logits = self(top, bottom)
        return (F.cross_entropy(top_logits.float(), top, reduction="sum")
                + F.cross_entropy(bottom_logits.float(), bottom, reduction="sum"))

    @torch.no_grad()
    def sample(self, n: int, top_grid: tuple[int, int], bottom_grid: tuple[int, int], temperature: float = 1.0,
               generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws: the top grid first, then the bottom grid given it; (n, h, w) and (n, H, W) codes."""
        top = self.top.sample((n, *top_grid), temperature=temperature, generator=generator)
        bottom = self.bottom.sample((n, *bottom_grid), temperature=temperature, generator=generator,
                                    condition=self.condition(top))
        return top, bottom
