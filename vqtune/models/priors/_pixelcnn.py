"""Gated PixelCNN prior over VQ-VAE code grids (van den Oord et al. 2016, arXiv 1606.05328).

A vertical stack sees every row above; a horizontal stack sees the pixels to the left in the current row
and, through a one-row shift of the vertical stack, everything above: together no blind spot. The first
layer is masked "A" (the current position is excluded); later layers are "B" (included, because their
inputs already exclude it). Causality comes from padding and shifting rather than weight masks, so it
holds on any grid shape, square or not.

Conditioning (the paper's conditional Gated PixelCNN, as the VQ-VAE-2 bottom prior uses it): a feature map
known in full before sampling, e.g. the embedded and upsampled top codes, goes through a small non-causal
stack and is added, through a 1x1 projection per layer, to the gate pre-activations of both stacks.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from vqtune.models.priors._fast_sampling import CachedSampler, LayerCache, pointwise
from vqtune.models.priors._protocol import OneLevel


class GatedLayer(nn.Module):
    """One gated layer: tanh(W_f * x + V_f * s) * sigmoid(W_g * x + V_g * s) on both stacks.

    Shapes: ``v`` and ``h`` are (B, C, H, W); the conditioning features ``s``, when the layer has them,
    (B, C, H, W) too.
    """

    def __init__(self, channels: int, kernel: int, first: bool, dropout: float = 0.0, conditioned: bool = False):
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
        self.conditioned = conditioned
        if conditioned:
            self.condition_vertical = nn.Conv2d(channels, 2 * channels, 1)
            self.condition_horizontal = nn.Conv2d(channels, 2 * channels, 1)

    def forward(self, v: torch.Tensor, h: torch.Tensor, condition: Optional[torch.Tensor] = None):
        height, width = v.shape[-2:]
        v_features = self.vertical(F.pad(v, (self.half, self.half, self.half, 0)))
        if self.conditioned:
            v_features = v_features + self.condition_vertical(condition)
        # Shift down one row: the horizontal stack at row r may only see rows < r of the vertical stack.
        shifted = F.pad(v_features, (0, 0, 1, 0))[:, :, :height, :]
        from_above = self.vertical_to_horizontal(shifted)
        if self.conditioned:
            from_above = from_above + self.condition_horizontal(condition)
        if self.first:
            h_features = self.horizontal(F.pad(h, (self.half + 1, 0, 0, 0)))[:, :, :, :width]
        else:
            h_features = self.horizontal(F.pad(h, (self.half, 0, 0, 0)))
        h_features = h_features + from_above
        v_out = self.gate(v_features)
        h_out = self.horizontal_out(self.dropout(self.gate(h_features)))
        # No residual in the first layer: its input holds the current position, which it must not see.
        return v_out, (h_out if self.first else h + h_out)

    @staticmethod
    def gate(x: torch.Tensor) -> torch.Tensor:
        """tanh(a) * sigmoid(b) of the two halves of x's dimension 1: (B, 2C, ...) -> (B, C, ...)."""
        a, b = x.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    # Cached sampling (see _fast_sampling.py): :meth:`forward` a row of the vertical stack and a pixel of the
    # horizontal stack at a time, every addition in the same order, so the logits agree to float rounding.

    def cache(self, batch: int, width: int) -> LayerCache:
        """Empty caches of this layer's inputs for grids of ``batch`` x ``width`` columns."""
        weight = self.horizontal.weight
        channels = weight.shape[1]
        zeros = lambda *size: torch.zeros(*size, device=weight.device, dtype=weight.dtype)  # noqa: E731
        # Layer A's horizontal input is padded by k//2 + 1 on the left, B's by k//2 (as in forward).
        pad = self.half + 1 if self.first else self.half
        # The horizontal kernel (2C, C, 1, k//2 + 1) flattened in the (column, channel) order of a window of the
        # channels-last input row: at one pixel the convolution is one matrix product (``F.linear``, far cheaper
        # to call on the CPU than ``conv2d`` at that size).
        flat = weight.permute(0, 2, 3, 1).reshape(2 * channels, -1)
        return LayerCache(zeros(batch, channels, self.half + 1, width + 2 * self.half),
                          zeros(batch, pad + width, channels), zeros(batch, 2 * channels, 1, width),
                          pad, self.half, (flat,))

    def start_row(self, cache: LayerCache, condition_row: Optional[torch.Tensor]) -> None:
        """The vertical term of the current row's horizontal pre-activations, channels last: (B, W, 2C)."""
        from_above = self.vertical_to_horizontal(cache.vertical_features)
        if self.conditioned:
            from_above = from_above + self.condition_horizontal(condition_row)
        cache.from_above = from_above[:, :, 0].transpose(1, 2).contiguous()

    def pixel_step(self, cache: LayerCache, c: int) -> torch.Tensor:
        """The horizontal stack's (B, C) output at column ``c`` of the current row."""
        row = cache.horizontal_input
        window = row[:, c : c + self.half + 1].flatten(1)  # (B, (k//2 + 1) C)
        h_features = F.linear(window, cache.weights[0], self.horizontal.bias) + cache.from_above[:, c]
        h_out = pointwise(self.horizontal_out, self.dropout(self.gate(h_features)))
        return h_out if self.first else row[:, c + cache.pad] + h_out

    def row_step(self, cache: LayerCache, condition_row: Optional[torch.Tensor]) -> torch.Tensor:
        """The vertical stack of the row just finished, from the last k//2 + 1 rows of this layer's input:
        kept for the next row's :meth:`start_row`; returns its (B, C, 1, W) gated output."""
        v_features = self.vertical(cache.vertical_input)  # (B, 2C, 1, W)
        if self.conditioned:
            v_features = v_features + self.condition_vertical(condition_row)
        cache.vertical_features = v_features
        return self.gate(v_features)


class GatedPixelCNN(OneLevel, nn.Module):
    """Autoregressive prior p(z) = prod_i p(z_i | z_<i [, s]) over (B, H, W) code grids in raster order.

    Args:
        codebook_size: K, the number of codes (and of logits per position).
        channels: width of both stacks.
        layers: gated layers (the first masked A, the rest B).
        kernel: odd kernel size of the stacks.
        dropout: dropout on the horizontal stack's gated features.
        condition_channels: channels of the conditioning map ``s`` (B, condition_channels, H, W) that
            ``forward`` and ``sample`` then require; 0 (default): unconditioned.

    Example:
        >>> prior = GatedPixelCNN(codebook_size=16, channels=8, layers=3)
        >>> prior(torch.randint(0, 16, (2, 4, 6))).shape
        torch.Size([2, 16, 4, 6])
        >>> bottom = GatedPixelCNN(codebook_size=16, channels=8, layers=3, condition_channels=5)
        >>> bottom(torch.randint(0, 16, (2, 4, 6)), condition=torch.randn(2, 5, 4, 6)).shape
        torch.Size([2, 16, 4, 6])
    """

    def __init__(self, codebook_size: int, channels: int = 64, layers: int = 8, kernel: int = 3,
                 dropout: float = 0.0, condition_channels: int = 0):
        super().__init__()
        if condition_channels < 0:
            raise ValueError(f"condition_channels must be >= 0, got {condition_channels}")
        self.codebook_size = codebook_size
        self.condition_channels = condition_channels
        self.width = channels
        self.embedding = nn.Embedding(codebook_size, channels)
        conditioned = condition_channels > 0
        if conditioned:
            # Non-causal: the condition is known in full before the first code is drawn.
            self.condition_stack = nn.Sequential(
                nn.Conv2d(condition_channels, channels, 3, padding=1), nn.ReLU(),
                nn.Conv2d(channels, channels, 3, padding=1),
            )
        self.layers = nn.ModuleList(
            GatedLayer(channels, kernel, first=(i == 0), dropout=dropout, conditioned=conditioned)
            for i in range(layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, 4 * channels, 1), nn.ReLU(), nn.Conv2d(4 * channels, codebook_size, 1)
        )

    @classmethod
    def from_options(cls, codebook_size: int, options: Mapping[str, Any], condition_channels: int = 0) -> "GatedPixelCNN":
        """A prior of ``codebook_size`` codes from a config section's plain options (``channels``, ``layers``,
        ``kernel``, ``dropout``)."""
        return cls(codebook_size, **options, condition_channels=condition_channels)

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def forward(self, codes: torch.Tensor, condition: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, H, W) int64 codes -> (B, K, H, W) logits of p(z_i | z_<i [, s]).

        ``condition``: (B, condition_channels, H, W), required by a conditioned prior and refused otherwise.
        """
        return self.forward_embedded(self.embed(codes), condition)

    def forward_embedded(self, x: torch.Tensor, condition: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits from already embedded codes ``x`` (B, C, H, W) (lets tests differentiate w.r.t. inputs)."""
        batch, _, height, width = x.shape
        return self.logits(x, self.condition_features(condition, (batch, height, width)))

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, H, W) int64 codes -> (B, C, H, W) embeddings."""
        return self.embedding(codes).permute(0, 3, 1, 2)

    def condition_features(self, condition: Optional[torch.Tensor],
                           shape: tuple[int, int, int]) -> Optional[torch.Tensor]:
        """The conditioning stack's (B, C, H, W) features of ``condition`` for code grids of ``shape``
        (B, H, W); None for an unconditioned prior. Raises ValueError when ``condition`` is missing,
        unexpected or of the wrong shape."""
        if self.condition_channels == 0:
            if condition is not None:
                raise ValueError("this prior is unconditioned (condition_channels=0) but got a condition; "
                                 "build it with condition_channels > 0 or pass condition=None")
            return None
        expected = (shape[0], self.condition_channels, shape[1], shape[2])
        if condition is None:
            raise ValueError(f"this prior is conditioned: pass condition of shape {expected} "
                             "(B, condition_channels, H, W) at the code grid's size")
        if tuple(condition.shape) != expected:
            raise ValueError(f"condition has shape {tuple(condition.shape)}, expected {expected} "
                             "(B, condition_channels, H, W) at the code grid's size")
        return self.condition_stack(condition)

    def logits(self, x: torch.Tensor, features: Optional[torch.Tensor]) -> torch.Tensor:
        """Embedded codes (B, C, H, W) and conditioning features (B, C, H, W) or None -> (B, K, H, W)."""
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, features)
        return self.head(h)

    def embed_position(self, codes: torch.Tensor) -> torch.Tensor:
        """(B,) codes -> (B, C) embeddings (one position, for cached sampling)."""
        return self.embedding(codes)

    def head_position(self, h: torch.Tensor) -> torch.Tensor:
        """The head at one position: (B, C) -> (B, K) logits."""
        for module in self.head:
            h = pointwise(module, h) if isinstance(module, nn.Conv2d) else module(h)
        return h

    @torch.no_grad()
    def sample(self, shape: tuple[int, int, int], temperature: float = 1.0,
               generator: Optional[torch.Generator] = None, condition: Optional[torch.Tensor] = None,
               method: Literal["fast", "reference"] = "fast") -> torch.Tensor:
        """Draw (B, H, W) code grids in raster order.

        ``condition``: (B, condition_channels, H, W) for a conditioned prior. ``method``: "fast" (default)
        keeps each layer's computed rows and pixels and computes one position per step
        (:class:`CachedSampler`); "reference" evaluates the whole network on the rows so far for every
        position. Both make the same generator calls in the same order on logits that agree to float
        rounding, so they draw the same codes from the same ``generator`` state unless a rounding
        difference decides a draw (in eval mode, where dropout is off: call ``eval()`` before sampling).
        """
        batch, height, width = shape
        features = self.condition_features(condition, shape)
        if method == "fast":
            return CachedSampler(self, shape, features).sample(temperature, generator)
        if method != "reference":
            raise ValueError(f"method must be 'fast' or 'reference', got {method!r}")
        codes = torch.zeros(shape, dtype=torch.long, device=self.device)
        for r in range(height):
            rows = None if features is None else features[:, :, : r + 1]
            for c in range(width):
                # Rows below r are still zeros and cannot influence position (r, c): causality.
                logits = self.logits(self.embed(codes[:, : r + 1]), rows)[:, :, r, c] / temperature
                codes[:, r, c] = torch.multinomial(F.softmax(logits.float(), dim=1), 1, generator=generator)[:, 0]
        return codes
