"""Gated PixelCNN prior over VQ-VAE code grids (van den Oord et al. 2016, arXiv 1606.05328).

A vertical stack sees every row above; a horizontal stack sees the pixels to the left in the current row
and, through a one-row shift of the vertical stack, everything above: together no blind spot. The first
layer is masked "A" (the current position is excluded); later layers are "B" (included, because their
inputs already exclude it). Causality comes from padding and shifting rather than weight masks, so it
holds on any grid shape, square or not.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class GatedLayer(nn.Module):
    """One gated layer: tanh(W_f * x) * sigmoid(W_g * x) on both stacks.

    Shapes: ``v`` and ``h`` are (B, C, H, W).
    """

    def __init__(self, channels: int, kernel: int, first: bool, dropout: float = 0.0):
        super().__init__()
        if kernel % 2 == 0 or kernel < 3:
            raise ValueError(f"kernel must be odd and >= 3, got {kernel}")
        self.first = first
        self.half = kernel // 2
        # Vertical: rows [r - k//2, r] of its input (causal in rows; shifted before it reaches h).
        self.vertical = nn.Conv2d(channels, 2 * channels, (self.half + 1, kernel))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        # Horizontal: columns [c - k//2, c] of its row (B), or [c - k//2 - 1, c - 1] in the first layer (A).
        self.horizontal = nn.Conv2d(channels, 2 * channels, (1, self.half + 1))
        self.horizontal_out = nn.Conv2d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, v: torch.Tensor, h: torch.Tensor):
        height, width = v.shape[-2:]
        v_features = self.vertical(F.pad(v, (self.half, self.half, self.half, 0)))
        # Shift down one row: the horizontal stack at row r may only see rows < r of the vertical stack.
        shifted = F.pad(v_features, (0, 0, 1, 0))[:, :, :height, :]
        if self.first:
            h_features = self.horizontal(F.pad(h, (self.half + 1, 0, 0, 0)))[:, :, :, :width]
        else:
            h_features = self.horizontal(F.pad(h, (self.half, 0, 0, 0)))
        h_features = h_features + self.vertical_to_horizontal(shifted)
        v_out = _gate(v_features)
        h_out = self.horizontal_out(self.dropout(_gate(h_features)))
        # No residual in the first layer: its input holds the current position, which it must not see.
        return v_out, (h_out if self.first else h + h_out)


def _gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedPixelCNN(nn.Module):
    """Autoregressive prior p(z) = prod_i p(z_i | z_<i) over (B, H, W) code grids in raster order.

    Args:
        codebook_size: K, the number of codes (and of logits per position).
        channels: width of both stacks.
        layers: gated layers (the first masked A, the rest B).
        kernel: odd kernel size of the stacks.
        dropout: dropout on the horizontal stack's gated features.

    Example:
        >>> prior = GatedPixelCNN(codebook_size=16, channels=8, layers=3)
        >>> prior(torch.randint(0, 16, (2, 4, 6))).shape
        torch.Size([2, 16, 4, 6])
    """

    def __init__(self, codebook_size: int, channels: int = 64, layers: int = 8, kernel: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        self.codebook_size = codebook_size
        self.embedding = nn.Embedding(codebook_size, channels)
        self.layers = nn.ModuleList(
            GatedLayer(channels, kernel, first=(i == 0), dropout=dropout) for i in range(layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, 4 * channels, 1), nn.ReLU(), nn.Conv2d(4 * channels, codebook_size, 1)
        )

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, H, W) int64 codes -> (B, K, H, W) logits of p(z_i | z_<i)."""
        return self.forward_embedded(self.embedding(codes).permute(0, 3, 1, 2))

    def forward_embedded(self, x: torch.Tensor) -> torch.Tensor:
        """Logits from already embedded codes ``x`` (B, C, H, W) (lets tests differentiate w.r.t. inputs)."""
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h)
        return self.head(h)

    @torch.no_grad()
    def sample(self, shape: tuple[int, int, int], temperature: float = 1.0,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Draw (B, H, W) code grids in raster order: one network evaluation per position."""
        batch, height, width = shape
        device = self.embedding.weight.device
        codes = torch.zeros(shape, dtype=torch.long, device=device)
        for r in range(height):
            for c in range(width):
                # Rows below r are still zeros and cannot influence position (r, c): causality.
                logits = self.forward(codes[:, : r + 1])[:, :, r, c] / temperature
                codes[:, r, c] = torch.multinomial(F.softmax(logits.float(), dim=1), 1, generator=generator)[:, 0]
        return codes
