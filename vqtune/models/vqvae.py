"""Encoder, decoder and the VQ-VAE (van den Oord et al. 2017, arXiv 1711.00937, section 4.1)."""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
from torch import nn

from vqtune.models.quantizers import Quantizer, QuantizerOutput, VectorQuantizer


class ResidualStack(nn.Module):
    """``blocks`` residual blocks x + conv1x1(ReLU(conv3x3(ReLU(x)))), then a ReLU. (B, C, H, W) -> same."""

    def __init__(self, channels: int, residual_hidden: int, blocks: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(),
                nn.Conv2d(channels, residual_hidden, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(residual_hidden, channels, 1),
            )
            for _ in range(blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return torch.relu(x)


class Encoder(nn.Module):
    """(B, C, H, W) images -> (B, D, H/2^d, W/2^d) pre-quantization latents z_e.

    ``downsample`` strided 4x4 convolutions (the first d-1 with hidden/2 channels, as in the paper's
    two-halving CIFAR model), a 3x3 convolution, the residual stack, and a 1x1 convolution to D channels.
    """

    def __init__(
        self, in_channels: int, hidden: int, residual_hidden: int, residual_blocks: int, downsample: int,
        embedding_dim: int,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(downsample):
            out = hidden if i == downsample - 1 else max(hidden // 2, 1)
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.ReLU()]
            channels = out
        layers += [nn.Conv2d(hidden, hidden, 3, padding=1), ResidualStack(hidden, residual_hidden, residual_blocks)]
        layers.append(nn.Conv2d(hidden, embedding_dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """(B, D, h, w) quantized latents -> (B, C, h*2^d, w*2^d) reconstructions, mirroring :class:`Encoder`."""

    def __init__(
        self, out_channels: int, hidden: int, residual_hidden: int, residual_blocks: int, upsample: int,
        embedding_dim: int,
    ):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(embedding_dim, hidden, 3, padding=1),
            ResidualStack(hidden, residual_hidden, residual_blocks),
        ]
        channels = hidden
        for i in range(upsample):
            last = i == upsample - 1
            out = out_channels if last else max(hidden // 2, 1)
            layers.append(nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1))
            if not last:
                layers.append(nn.ReLU())
            channels = out
        self.net = nn.Sequential(*layers)

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.net(z_q)


class VQVAEOutput(NamedTuple):
    """reconstruction: (B, C, H, W); vq: the quantizer's result on the (B, D, H/2^d, W/2^d) latents (for two
    levels: the bottom level's, with the loss of both); levels: each level's own result, top first."""

    reconstruction: torch.Tensor
    vq: QuantizerOutput
    levels: tuple = ()

    @property
    def grids(self) -> tuple[torch.Tensor, ...]:
        """Each level's (B, h, w) code indices, top first: what ``encode`` returns and ``decode`` takes."""
        return tuple(level.indices for level in self.levels)


class VQVAE(nn.Module):
    """Encoder -> quantizer -> Decoder. Inputs are images scaled to [-0.5, 0.5].

    The quantizer is a :class:`VectorQuantizer` of ``codebook_size`` codes built with ``quantizer_options``,
    or ``quantizer`` when given (any module with the same ``forward``, ``encode``, ``lookup`` and
    ``codebook_size``, such as a :class:`FiniteScalarQuantizer` of ``embedding_dim`` channels).

    Example:
        >>> model = VQVAE(in_channels=3, hidden=16, residual_hidden=8, residual_blocks=1, downsample=2,
        ...               embedding_dim=4, codebook_size=32)
        >>> out = model(torch.rand(2, 3, 16, 24) - 0.5)
        >>> out.reconstruction.shape, [grid.shape for grid in out.grids]
        (torch.Size([2, 3, 16, 24]), [torch.Size([2, 4, 6])])
    """

    def __init__(
        self,
        in_channels: int = 3,
        hidden: int = 128,
        residual_hidden: int = 32,
        residual_blocks: int = 2,
        downsample: int = 2,
        embedding_dim: int = 64,
        codebook_size: int = 512,
        quantizer: Optional[Quantizer] = None,
        **quantizer_options,
    ):
        super().__init__()
        if not 1 <= downsample <= 4:
            raise ValueError(f"downsample must be in 1..4, got {downsample}")
        self.downsample = downsample
        self.encoder = Encoder(in_channels, hidden, residual_hidden, residual_blocks, downsample, embedding_dim)
        if quantizer is not None and quantizer_options:
            raise ValueError(f"quantizer options {sorted(quantizer_options)} given with a built quantizer")
        if quantizer is None:
            quantizer = VectorQuantizer(codebook_size, embedding_dim, **quantizer_options)
        self.quantizer = quantizer
        self.decoder = Decoder(in_channels, hidden, residual_hidden, residual_blocks, downsample, embedding_dim)

    @property
    def quantizers(self) -> tuple:
        """Each level's quantizer, top first (one here)."""
        return (self.quantizer,)

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        vq = self.quantizer(self.encoder(x))
        return VQVAEOutput(self.decoder(vq.quantized), vq, (vq,))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        """(B, C, H, W) images -> its code grids, one level: a 1-tuple of (B, H/2^d, W/2^d) code indices."""
        return (self.quantizer.encode(self.encoder(x)),)

    @torch.no_grad()
    def decode(self, grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """The code grids of :meth:`encode` (a 1-tuple of (B, h, w) indices) -> (B, C, h*2^d, w*2^d) images in
        [-0.5, 0.5] (not clamped)."""
        (indices,) = grids
        return self.decoder(self.quantizer.lookup(indices))
