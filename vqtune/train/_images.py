"""Images from model space back to uint8 (``vqtune.data.to_model_space`` is the way there), and grids of them
(reconstructions, samples)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from vqtune.data import to_model_space  # noqa: F401 (the inverse of to_uint8, importable from here)


def image_grid(rows: list[torch.Tensor], min_tile: int = 96, gap: int = 2) -> Image.Image:
    """Tile uint8 (N, C, H, W) batches, one batch per row, into a PIL image.

    Small images are enlarged by an integer factor (nearest neighbour) so that tiles are at least
    ``min_tile`` pixels high and stay crisp.
    """
    n, c, h, w = max(rows, key=len).shape  # the last row may be shorter
    scale = max(1, -(-min_tile // h))
    th, tw = h * scale, w * scale
    canvas = np.full((len(rows) * (th + gap) + gap, n * (tw + gap) + gap, 3), 255, np.uint8)
    for r, batch in enumerate(rows):
        tiles = batch.cpu()
        if tiles.shape[1] == 1:
            tiles = tiles.expand(-1, 3, -1, -1)
        tiles = tiles.repeat_interleave(scale, 2).repeat_interleave(scale, 3).permute(0, 2, 3, 1).numpy()
        for i, tile in enumerate(tiles):
            y, x = gap + r * (th + gap), gap + i * (tw + gap)
            canvas[y : y + th, x : x + tw] = tile
    return Image.fromarray(canvas)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Model-space images in [-0.5, 0.5] (B, C, H, W) -> uint8 (B, C, H, W)."""
    return ((x.float() + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
