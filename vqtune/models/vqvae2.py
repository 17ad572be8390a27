"""The two-level VQ-VAE-2 (Razavi et al. 2019, arXiv 1906.00446, section 3.1 and figure 2a).

The bottom encoder maps an image to features at H/2^d; a top encoder halves them ``top_downsample`` more times and
quantizes them (the global structure). The top codes are decoded back to the bottom grid and, concatenated with
the bottom features, give the bottom quantizer's input (the local detail, given the top). The decoder reads
both: the top codes upsampled to the bottom grid, and the bottom codes.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


from vqtune.models.quantizers import Quantizer
from vqtune.models.vqvae import Decoder, Encoder, VQVAEOutput


def _upsampler(channels: int, halvings: int) -> nn.Sequential:
    """``halvings`` 4x4 stride-2 transposed convolutions, ReLU between them: (B, c, h, w) -> (B, c, h*2^n, w*2^n)."""
    layers: list[nn.Module] = []
    for i in range(halvings):
        layers.append(nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1))
        if i < halvings - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class VQVAE2(nn.Module):
    """Two code grids: top (B, H/2^(d+t), W/2^(d+t)) and bottom (B, H/2^d, W/2^d), d = ``downsample``,
    t = ``top_downsample``. Inputs are images scaled to [-0.5, 0.5].

    Args:
        quantizer: the bottom level's quantizer (D = ``embedding_dim`` channels in and out).
        top_quantizer: the top level's.

    ``forward`` returns a :class:`VQVAEOutput` whose ``vq`` is the bottom level's result with the loss of both
    levels, and whose ``levels`` holds (top, bottom).

    Example:
        >>> from vqtune.models import VectorQuantizer
        >>> model = VQVAE2(3, 16, 8, 1, downsample=2, top_downsample=1, embedding_dim=4,
        ...                quantizer=VectorQuantizer(32, 4), top_quantizer=VectorQuantizer(32, 4))
        >>> out = model(torch.rand(2, 3, 32, 48) - 0.5)
        >>> out.reconstruction.shape, [level.indices.shape for level in out.levels]
        (torch.Size([2, 3, 32, 48]), [torch.Size([2, 4, 6]), torch.Size([2, 8, 12])])
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        residual_hidden: int,
        residual_blocks: int,
        downsample: int,
        top_downsample: int,
        embedding_dim: int,
        quantizer: Quantizer,
        top_quantizer: Quantizer,
    ):
        super().__init__()
        if not 1 <= downsample <= 4 or not 1 <= top_downsample <= 3:
            raise ValueError(f"downsample must be in 1..4 and top_downsample in 1..3, got {downsample}, "
                             f"{top_downsample}")
        self.downsample = downsample
        self.top_downsample = top_downsample
        d = embedding_dim
        self.encoder = Encoder(in_channels, hidden, residual_hidden, residual_blocks, downsample, hidden)
        self.top_encoder = Encoder(hidden, hidden, residual_hidden, residual_blocks, top_downsample, d)
        self.top_quantizer = top_quantizer
        self.top_decoder = Decoder(d, hidden, residual_hidden, residual_blocks, top_downsample, d)
        self.bottom_in = nn.Conv2d(hidden + d, d, 1)
        self.quantizer = quantizer
        self.upsample_top = _upsampler(d, top_downsample)
        self.decoder = Decoder(in_channels, hidden, residual_hidden, residual_blocks, downsample, 2 * d)

    @property
    def quantizers(self) -> tuple:
        """Each level's quantizer, top first."""
        return (self.top_quantizer, self.quantizer)

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        features = self.encoder(x)
        top = self.top_quantizer(self.top_encoder(features))
        bottom = self.quantizer(self.bottom_in(torch.cat([features, self.top_decoder(top.quantized)], 1)))
        reconstruction = self.decoder(torch.cat([self.upsample_top(top.quantized), bottom.quantized], 1))
        both = bottom._replace(loss=top.loss + bottom.loss,
                               commitment_loss=(top.commitment_loss + bottom.commitment_loss) / 2,
                               codebook_loss=(top.codebook_loss + bottom.codebook_loss) / 2)
        return VQVAEOutput(reconstruction, both, (top, bottom))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) images -> the (top, bottom) code indices."""
        features = self.encoder(x)
        top = self.top_quantizer.encode(self.top_encoder(features))
        condition = self.top_decoder(self.top_quantizer.lookup(top))
        return top, self.quantizer.encode(self.bottom_in(torch.cat([features, condition], 1)))

    @torch.no_grad()
    def decode(self, grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """The (top, bottom) code indices of :meth:`encode` -> (B, C, H, W) images in [-0.5, 0.5] (not clamped)."""
        top, bottom = grids
        upsampled = self.upsample_top(self.top_quantizer.lookup(top))
        return self.decoder(torch.cat([upsampled, self.quantizer.lookup(bottom)], 1))



