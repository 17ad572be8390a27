"""Cached incremental sampling for a stack of causal layers (after Ramachandran et al. 2017, arXiv 1704.06001).

Drawing position (r, c) of a Gated PixelCNN needs, in every layer, the horizontal stack at (r, c) and, through
the one-row shift, the vertical stack's pre-activations of row r - 1. Both depend only on positions drawn
before, so each can be computed once and kept:

- the vertical stack a row at a time, when that row's codes are all drawn: each layer's conv reads the
  last k//2 + 1 rows of its input, which a :class:`LayerCache` keeps per layer;
- the horizontal stack a pixel at a time: each layer's conv reads k//2 + 1 columns of its input's current
  row, which the same cache keeps, plus the cached vertical term of that column.

A position then costs two small matrix products per layer and the head's two, instead of a pass of the
whole network over rows [0, r]. The layers compute their own steps (``GatedLayer.start_row``, ``pixel_step``,
``row_step``) on the cache they made; this module keeps the caches and passes each layer's output to the next,
knowing nothing else of the architecture.
"""

from __future__ import annotations

from typing import Optional, Protocol, Sequence

import torch
import torch.nn.functional as F


class LayerCache:
    """What one layer keeps while grids are drawn in raster order.

    Args:
        vertical_input: the last k//2 + 1 rows of the layer's vertical input, zero-padded by k//2 columns each
            side, (B, C, k//2 + 1, W + 2 k//2); the newest row is the one being drawn (layer 0) or just finished.
        horizontal_input: the current row of its horizontal input, channels last, with the layer's own left
            padding ``pad``, (B, pad + W, C); columns right of the current one are stale and never read.
        vertical_features: the vertical pre-activations of the row above, (B, 2C, 1, W).
        pad: the left padding of ``horizontal_input``.
        half: k//2.
        weights: anything the layer precomputes for its steps (e.g. a flattened kernel).
    """

    def __init__(self, vertical_input: torch.Tensor, horizontal_input: torch.Tensor,
                 vertical_features: torch.Tensor, pad: int, half: int, weights: Sequence[torch.Tensor] = ()):
        self.vertical_input = vertical_input
        self.horizontal_input = horizontal_input
        self.vertical_features = vertical_features
        self.pad = pad
        self.half = half
        self.weights = tuple(weights)
        # What the vertical stack (and the condition) add to the current row's horizontal pre-activations,
        # channels last (B, W, 2C); set by the layer's ``start_row``.
        self.from_above: Optional[torch.Tensor] = None

    def put_pixel(self, c: int, x: torch.Tensor) -> None:
        """Column ``c`` of the current row of the horizontal input: ``x`` (B, C)."""
        self.horizontal_input[:, c + self.pad] = x

    def put_vertical_pixel(self, c: int, x: torch.Tensor) -> None:
        """Column ``c`` of the newest row of the vertical input (the row being drawn): ``x`` (B, C)."""
        self.vertical_input[:, :, self.half, c + self.half] = x

    def push_row(self, row: Optional[torch.Tensor]) -> None:
        """Drop the oldest row of the vertical input and append ``row`` (B, C, 1, W) between its padding
        columns (None: zeros)."""
        window = self.vertical_input
        window[:, :, :-1] = window[:, :, 1:].clone()
        window[:, :, -1] = 0
        if row is not None:
            window[:, :, -1:, self.half : window.shape[-1] - self.half] = row


class CachedLayer(Protocol):
    """A layer that can be evaluated a row (vertical stack) and a pixel (horizontal stack) at a time."""

    def cache(self, batch: int, width: int) -> LayerCache:
        """An empty cache for grids of ``batch`` x ``width`` columns."""

    def start_row(self, cache: LayerCache, condition_row: Optional[torch.Tensor]) -> None:
        """Before the first pixel of a row: the vertical term of its horizontal pre-activations."""

    def pixel_step(self, cache: LayerCache, c: int) -> torch.Tensor:
        """The (B, C) output at column ``c`` of the current row, from the inputs put so far."""

    def row_step(self, cache: LayerCache, condition_row: Optional[torch.Tensor]) -> torch.Tensor:
        """After the last pixel of a row: its vertical stack, kept for the next row; returns the (B, C, 1, W)
        row of the next layer's vertical input."""


class CachedModel(Protocol):
    """A model made of :class:`CachedLayer`s between a per-position embedding and a per-position head."""

    layers: Sequence[CachedLayer]

    @property
    def device(self) -> torch.device: ...

    def embed_position(self, codes: torch.Tensor) -> torch.Tensor:
        """(B,) codes -> (B, C) inputs of the first layer."""

    def head_position(self, h: torch.Tensor) -> torch.Tensor:
        """(B, C) output of the last layer -> (B, K) logits."""


class CachedSampler:
    """Per-layer caches of one batch of code grids being drawn in raster order.

    Args:
        model: the prior (its layers and head are used as they are; eval mode turns dropout off).
        shape: (B, H, W) of the grids to draw.
        features: the conditioning stack's (B, C, H, W) features (``model.condition_features``), or None.

    Positions are visited in raster order: :meth:`position_logits` of (r, c), then :meth:`put` of the codes
    drawn there, then the next position.
    """

    def __init__(self, model: CachedModel, shape: tuple[int, int, int], features: Optional[torch.Tensor]):
        self.model = model
        self.batch, self.height, self.width = shape
        self.features = features
        self.layers = list(model.layers)
        self.caches = [layer.cache(self.batch, self.width) for layer in self.layers]
        self.next = (0, 0)
        self.row_ready = -1

    @torch.no_grad()
    def sample(self, temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Draw the (B, H, W) grids; the same generator calls, in the same order, as the reference sampler."""
        codes = torch.zeros((self.batch, self.height, self.width), dtype=torch.long, device=self.model.device)
        for r in range(self.height):
            for c in range(self.width):
                logits = self.position_logits(r, c) / temperature
                codes[:, r, c] = torch.multinomial(F.softmax(logits.float(), dim=1), 1, generator=generator)[:, 0]
                self.put(r, c, codes[:, r, c])
        return codes

    @torch.no_grad()
    def position_logits(self, r: int, c: int) -> torch.Tensor:
        """(B, K) logits of p(z_rc | z_<rc [, s]) from the codes put so far (every position before (r, c))."""
        if (r, c) != self.next:
            raise RuntimeError(f"positions come in raster order: expected {self.next}, got {(r, c)}")
        if self.row_ready != r:
            self._start_row(r)
        h = None
        for i, (layer, cache) in enumerate(zip(self.layers, self.caches)):
            h = layer.pixel_step(cache, c)  # (B, C)
            if i + 1 < len(self.layers):
                self.caches[i + 1].put_pixel(c, h)
        return self.model.head_position(h)

    @torch.no_grad()
    def put(self, r: int, c: int, codes: torch.Tensor) -> None:
        """Record the (B,) codes drawn at (r, c); after the last column, finish row r's vertical stack."""
        if (r, c) != self.next:
            raise RuntimeError(f"positions come in raster order: expected {self.next}, got {(r, c)}")
        embedded = self.model.embed_position(codes)  # (B, C)
        self.caches[0].put_pixel(c, embedded)
        self.caches[0].put_vertical_pixel(c, embedded)
        if c + 1 < self.width:
            self.next = (r, c + 1)
            return
        self._finish_row(r)
        self.next = (r + 1, 0)

    def _condition_row(self, r: int) -> Optional[torch.Tensor]:
        return None if self.features is None else self.features[:, :, r : r + 1]

    def _finish_row(self, r: int) -> None:
        """Row r's vertical stack in every layer, from the last k//2 + 1 rows of each layer's input."""
        condition = self._condition_row(r)
        for i, (layer, cache) in enumerate(zip(self.layers, self.caches)):
            row = layer.row_step(cache, condition)
            if i + 1 < len(self.layers):
                self.caches[i + 1].push_row(row)
        self.caches[0].push_row(None)  # layer 0's next row: filled as codes are put

    def _start_row(self, r: int) -> None:
        condition = self._condition_row(r)
        for layer, cache in zip(self.layers, self.caches):
            layer.start_row(cache, condition)
        self.row_ready = r


def pointwise(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution at one pixel: (B, C_in) -> (B, C_out)."""
    return F.linear(x, conv.weight[:, :, 0, 0], conv.bias)
