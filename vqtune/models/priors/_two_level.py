"""The prior of a two-level VQ-VAE-2: a prior over the top codes, and one over the bottom codes conditioned on
the top codes (Razavi et al. 2019, section 3.2), each any :class:`Prior` (a Gated PixelCNN in the paper)."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn

from vqtune.models.priors._protocol import Prior, nll_of


class TwoLevelPrior(nn.Module):
    """p(top, bottom) = p(top) p(bottom | top).

    The condition of the bottom prior is the top codes' embeddings (the top prior's ``width`` wide) repeated up
    to the bottom grid (each top cell covers 2^top_downsample x 2^top_downsample bottom cells); a conditioned
    prior reads it (a Gated PixelCNN through its conditioning stack, added to every gate).

    Args:
        level: builds one level's prior from its ``condition_channels``: called with 0 for the top, then with
            the top's ``width`` for the bottom (e.g. ``lambda c: GatedPixelCNN(K, 64, condition_channels=c)``).
        codebook_size: K of both levels.
        top_downsample: halvings from the bottom grid to the top one.

    Example:
        >>> from vqtune.models import GatedPixelCNN
        >>> prior = TwoLevelPrior(lambda c: GatedPixelCNN(16, 8, 2, condition_channels=c), 16, top_downsample=1)
        >>> top, bottom = prior(torch.randint(0, 16, (2, 2, 3)), torch.randint(0, 16, (2, 4, 6)))
        >>> top.shape, bottom.shape
        (torch.Size([2, 16, 2, 3]), torch.Size([2, 16, 4, 6]))
    """

    def __init__(self, level: Callable[[int], Prior], codebook_size: int, top_downsample: int):
        super().__init__()
        self.codebook_size = codebook_size
        self.factor = 2**top_downsample
        self.top = level(0)
        self.top_embedding = nn.Embedding(codebook_size, self.top.width)
        self.bottom = level(self.top.width)

    def condition(self, top: torch.Tensor) -> torch.Tensor:
        """(B, h, w) top codes -> (B, width, h * 2^t, w * 2^t): their embeddings, repeated to the bottom grid."""
        embedded = self.top_embedding(top).permute(0, 3, 1, 2)
        return embedded.repeat_interleave(self.factor, dim=2).repeat_interleave(self.factor, dim=3)

    def forward(self, top: torch.Tensor, bottom: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, h, w) top and (B, H, W) bottom codes -> their (B, K, h, w) and (B, K, H, W) logits."""
        return self.top(top), self.bottom(bottom, condition=self.condition(top))

    def grid_logits(self, grids: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits of the (top, bottom) ``grids``."""
        top, bottom = grids
        return self(top, bottom)

    def nll_sum(self, grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """-log p(top, bottom) in nats, summed over the batch and both grids."""
        return nll_of(self.grid_logits(grids), grids)

    @torch.no_grad()
    def sample_grids(self, n: int, shapes: Sequence[tuple[int, int]], temperature: float = 1.0,
                     generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws: the top grid first, then the bottom grid given it; (n, h, w) and (n, H, W) codes of the
        (top, bottom) ``shapes``."""
        top_grid, bottom_grid = shapes
        top = self.top.sample((n, *top_grid), temperature=temperature, generator=generator)
        bottom = self.bottom.sample((n, *bottom_grid), temperature=temperature, generator=generator,
                                    condition=self.condition(top))
        return top, bottom
