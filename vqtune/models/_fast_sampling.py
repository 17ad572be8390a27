"""Cached incremental sampling for the Gated PixelCNN (after Ramachandran et al. 2017, arXiv 1704.06001).

Drawing position (r, c) needs, in every layer, the horizontal stack at (r, c) and, through the one-row
shift, the vertical stack's pre-activations of row r - 1. Both depend only on positions drawn before, so
each can be computed once and kept:

- the vertical stack a row at a time, when that row's codes are all drawn: each layer's conv reads the
  last k//2 + 1 rows of its input, which this class keeps per layer;
- the horizontal stack a pixel at a time: each layer's conv reads k//2 + 1 columns of its input's current
  row, which this class keeps per layer, plus the cached vertical term of that column.

A position then costs two small matrix products per layer and the head's two, instead of a pass of the
whole network over rows [0, r]. The row-wise vertical stack uses the layers' own convolutions; at one
pixel a convolution is a matrix product with the kernel flattened (``F.linear``, far cheaper to call on the
CPU than ``conv2d`` at that size), with every addition in the order of :meth:`GatedLayer.forward`, so the
logits agree with a full evaluation to float rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from vqtune.models.pixelcnn import GatedPixelCNN


class CachedSampler:
    """Per-layer caches of one batch of code grids being drawn in raster order.

    Args:
        model: the prior (its layers and head are used as they are; eval mode turns dropout off).
        shape: (B, H, W) of the grids to draw.
        features: the conditioning stack's (B, C, H, W) features (``model.condition_features``), or None.

    Positions are visited in raster order: :meth:`position_logits` of (r, c), then :meth:`put` of the codes
    drawn there, then the next position.
    """

    def __init__(self, model: "GatedPixelCNN", shape: tuple[int, int, int], features: Optional[torch.Tensor]):
        self.model = model
        self.batch, self.height, self.width = shape
        self.features = features
        self.layers = list(model.layers)
        self.half = self.layers[0].half
        weight = model.embedding.weight
        channels = weight.shape[1]
        zeros = lambda *size: torch.zeros(*size, device=weight.device, dtype=weight.dtype)  # noqa: E731
        # Per layer: the last k//2 + 1 rows of its vertical input, zero-padded by k//2 columns each side,
        # (B, C, k//2 + 1, W + 2 k//2); the newest row is the one being drawn (layer 0) or just finished.
        self.vertical_inputs = [zeros(self.batch, channels, self.half + 1, self.width + 2 * self.half)
                                for _ in self.layers]
        # Per layer: the current row of its horizontal input, channels last, with the layer's own left
        # padding (k//2 + 1 in layer A, k//2 in B), (B, pad + W, C); columns right of the current one are stale
        # and never read. Column c's conv reads padded columns [c, c + k//2]: as one (B, (k//2 + 1) C) view.
        self.pads = [self.half + 1 if layer.first else self.half for layer in self.layers]
        self.horizontal_inputs = [zeros(self.batch, pad + self.width, channels) for pad in self.pads]
        # The horizontal kernels (2C, C, 1, k//2 + 1) flattened in the same (column, channel) order.
        self.horizontal_weights = [layer.horizontal.weight.permute(0, 2, 3, 1).reshape(2 * channels, -1)
                                   for layer in self.layers]
        # Per layer: vertical pre-activations of the row above (B, 2C, 1, W), and what they (and the
        # condition) add to the horizontal pre-activations of the current row, channels last (B, W, 2C).
        self.vertical_features = [zeros(self.batch, 2 * channels, 1, self.width) for _ in self.layers]
        self.from_above: list[torch.Tensor] = []
        self.next = (0, 0)
        self.row_ready = -1

    @torch.no_grad()
    def sample(self, temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Draw the (B, H, W) grids; the same generator calls, in the same order, as the reference sampler."""
        codes = torch.zeros((self.batch, self.height, self.width), dtype=torch.long,
                            device=self.model.embedding.weight.device)
        for r in range(self.height):
            for c in range(self.width):
                logits = self.position_logits(r, c) / temperature
                codes[:, r, c] = torch.multinomial(F.softmax(logits.float(), dim=1), 1, generator=generator)[:, 0]
                self.put(r, c, codes[:, r, c])
        return codes

    @torch.no_grad()
    def position_logits(self, r: int, c: int) -> torch.Tensor:
        """(B, K) logits of p(z_rc | z_<rc [, s]) from the codes put so far (every position before (r, c)).

        Each layer as :meth:`GatedLayer.forward` at the one pixel (r, c), its convolutions as matrix products.
        """
        if (r, c) != self.next:
            raise RuntimeError(f"positions come in raster order: expected {self.next}, got {(r, c)}")
        if self.row_ready != r:
            self._start_row(r)
        h = None
        for i, layer in enumerate(self.layers):
            row = self.horizontal_inputs[i]
            window = row[:, c : c + self.half + 1].flatten(1)  # (B, (k//2 + 1) C)
            h_features = F.linear(window, self.horizontal_weights[i], layer.horizontal.bias) + self.from_above[i][:, c]
            h_out = _pointwise(layer.horizontal_out, layer.dropout(layer.gate(h_features)))
            h = h_out if layer.first else row[:, c + self.pads[i]] + h_out  # (B, C)
            if i + 1 < len(self.layers):
                self.horizontal_inputs[i + 1][:, c + self.pads[i + 1]] = h
        for module in self.model.head:
            h = _pointwise(module, h) if isinstance(module, torch.nn.Conv2d) else module(h)
        return h

    @torch.no_grad()
    def put(self, r: int, c: int, codes: torch.Tensor) -> None:
        """Record the (B,) codes drawn at (r, c); after the last column, finish row r's vertical stack."""
        if (r, c) != self.next:
            raise RuntimeError(f"positions come in raster order: expected {self.next}, got {(r, c)}")
        embedded = self.model.embedding(codes)  # (B, C)
        self.horizontal_inputs[0][:, c + self.pads[0]] = embedded
        self.vertical_inputs[0][:, :, self.half, c + self.half] = embedded
        if c + 1 < self.width:
            self.next = (r, c + 1)
            return
        self._finish_row(r)
        self.next = (r + 1, 0)

    def _finish_row(self, r: int) -> None:
        """Row r's vertical stack in every layer, from the last k//2 + 1 rows of each layer's input."""
        for i, layer in enumerate(self.layers):
            v_features = layer.vertical(self.vertical_inputs[i])  # (B, 2C, 1, W)
            if layer.conditioned:
                v_features = v_features + layer.condition_vertical(self.features[:, :, r : r + 1])
            self.vertical_features[i] = v_features
            if i + 1 < len(self.layers):
                _push_row(self.vertical_inputs[i + 1], layer.gate(v_features), self.half)
        _push_row(self.vertical_inputs[0], None, self.half)  # layer 0's next row: filled as codes are put

    def _start_row(self, r: int) -> None:
        """The vertical term of row r's horizontal pre-activations per layer, channels last: (B, W, 2C)."""
        self.from_above = []
        for i, layer in enumerate(self.layers):
            from_above = layer.vertical_to_horizontal(self.vertical_features[i])
            if layer.conditioned:
                from_above = from_above + layer.condition_horizontal(self.features[:, :, r : r + 1])
            self.from_above.append(from_above[:, :, 0].transpose(1, 2).contiguous())
        self.row_ready = r


def _pointwise(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution at one pixel: (B, C_in) -> (B, C_out)."""
    return F.linear(x, conv.weight[:, :, 0, 0], conv.bias)


def _push_row(window: torch.Tensor, row: Optional[torch.Tensor], half: int) -> None:
    """Drop the oldest row of ``window`` (B, C, k//2 + 1, W + 2 k//2) and append ``row`` (B, C, 1, W)
    between its padding columns (None: zeros)."""
    window[:, :, :-1] = window[:, :, 1:].clone()
    window[:, :, -1] = 0
    if row is not None:
        window[:, :, -1:, half : window.shape[-1] - half] = row
