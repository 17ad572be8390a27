"""A plain PyTorch VQ-VAE and training loop, written the way users commonly write one: the yardstick for vqtune.

The model is the CIFAR-10 model of van den Oord et al. 2017 (arXiv 1711.00937, section 4.1) with Sonnet's
defaults and an EMA quantizer (K = 512, decay 0.99, eps 1e-5, beta 0.25; one-hot encodings made with
``scatter_``, perplexity per batch). The loop is the common one: a per-item ``Dataset`` of floats in
[-0.5, 0.5], a 2-worker ``DataLoader`` that shuffles and drops the ragged last batch, Adam at 3e-4, ``.item()``
of the losses every step, contiguous tensors. Nothing here is tuned; that is the point of it.

The modules are created in the same order and shapes as ``vqtune.models.VQVAE`` and the codebook is drawn the
same way, so under the same ``torch.manual_seed`` both start from the same weights. The EMA statistics start
consistent with the codebook (N = 1, m = e): starting them at zero throws every code unused in the first batch
far away, a known bug of many copies of this loop.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset


class Residual(nn.Module):
    def __init__(self, channels: int, residual_hidden: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, residual_hidden, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(residual_hidden, channels, kernel_size=1),
        )

    def forward(self, x):
        return x + self.block(x)


class ResidualStack(nn.Module):
    def __init__(self, channels: int, residual_hidden: int, blocks: int):
        super().__init__()
        self.layers = nn.ModuleList([Residual(channels, residual_hidden) for _ in range(blocks)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return F.relu(x)


class Encoder(nn.Module):
    """(B, 3, 32, 32) -> (B, hidden, 8, 8)."""

    def __init__(self, in_channels: int, hidden: int, residual_hidden: int, residual_blocks: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden // 2, kernel_size=4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(hidden // 2, hidden, kernel_size=4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(hidden, hidden, kernel_size=3, padding=1)
        self.residual_stack = ResidualStack(hidden, residual_hidden, residual_blocks)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.conv3(x)
        return self.residual_stack(x)


class Decoder(nn.Module):
    """(B, D, 8, 8) -> (B, 3, 32, 32)."""

    def __init__(self, embedding_dim: int, hidden: int, residual_hidden: int, residual_blocks: int,
                 out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(embedding_dim, hidden, kernel_size=3, padding=1)
        self.residual_stack = ResidualStack(hidden, residual_hidden, residual_blocks)
        self.conv_trans1 = nn.ConvTranspose2d(hidden, hidden // 2, kernel_size=4, stride=2, padding=1)
        self.conv_trans2 = nn.ConvTranspose2d(hidden // 2, out_channels, kernel_size=4, stride=2, padding=1)

    def forward(self, x):
        x = self.conv1(x)
        x = self.residual_stack(x)
        x = F.relu(self.conv_trans1(x))
        return self.conv_trans2(x)


class VectorQuantizerEMA(nn.Module):
    """Nearest-code quantizer whose codebook follows exponential moving averages (paper App. A.1)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, commitment_cost: float, decay: float,
                 epsilon: float = 1e-5):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.commitment_cost = commitment_cost
        self.decay = decay
        self.epsilon = epsilon
        embedding = torch.empty(num_embeddings, embedding_dim).uniform_(-1 / num_embeddings, 1 / num_embeddings)
        self.register_buffer("embedding", embedding)
        self.register_buffer("ema_cluster_size", torch.ones(num_embeddings))
        self.register_buffer("ema_w", embedding.clone())

    def forward(self, inputs):
        """(B, D, H, W) -> loss, quantized (B, D, H, W), perplexity, one-hot encodings (B*H*W, K)."""
        inputs = inputs.permute(0, 2, 3, 1).contiguous()
        input_shape = inputs.shape
        flat_input = inputs.view(-1, self.embedding_dim)

        distances = (torch.sum(flat_input ** 2, dim=1, keepdim=True)
                     + torch.sum(self.embedding ** 2, dim=1)
                     - 2 * torch.matmul(flat_input, self.embedding.t()))
        encoding_indices = torch.argmin(distances, dim=1).unsqueeze(1)
        encodings = torch.zeros(encoding_indices.shape[0], self.num_embeddings, device=inputs.device)
        encodings.scatter_(1, encoding_indices, 1)
        quantized = torch.matmul(encodings, self.embedding).view(input_shape)

        if self.training:
            with torch.no_grad():
                self.ema_cluster_size.mul_(self.decay).add_(torch.sum(encodings, 0), alpha=1 - self.decay)
                n = torch.sum(self.ema_cluster_size)
                cluster_size = (self.ema_cluster_size + self.epsilon) / (n + self.num_embeddings * self.epsilon) * n
                dw = torch.matmul(encodings.t(), flat_input)
                self.ema_w.mul_(self.decay).add_(dw, alpha=1 - self.decay)
                self.embedding.copy_(self.ema_w / cluster_size.unsqueeze(1))

        e_latent_loss = F.mse_loss(quantized.detach(), inputs)
        loss = self.commitment_cost * e_latent_loss

        quantized = inputs + (quantized - inputs).detach()
        avg_probs = torch.mean(encodings, dim=0)
        perplexity = torch.exp(-torch.sum(avg_probs * torch.log(avg_probs + 1e-10)))
        return loss, quantized.permute(0, 3, 1, 2).contiguous(), perplexity, encodings


class Model(nn.Module):
    """Encoder -> 1x1 conv to D -> EMA quantizer -> decoder. Returns (vq_loss, reconstruction, perplexity)."""

    def __init__(self, in_channels: int = 3, hidden: int = 128, residual_hidden: int = 32, residual_blocks: int = 2,
                 embedding_dim: int = 64, num_embeddings: int = 512, commitment_cost: float = 0.25,
                 decay: float = 0.99, epsilon: float = 1e-5):
        super().__init__()
        self.encoder = Encoder(in_channels, hidden, residual_hidden, residual_blocks)
        self.pre_vq_conv = nn.Conv2d(hidden, embedding_dim, kernel_size=1)
        self.vq = VectorQuantizerEMA(num_embeddings, embedding_dim, commitment_cost, decay, epsilon)
        self.decoder = Decoder(embedding_dim, hidden, residual_hidden, residual_blocks, in_channels)

    def forward(self, x):
        z = self.pre_vq_conv(self.encoder(x))
        loss, quantized, perplexity, _ = self.vq(z)
        return loss, self.decoder(quantized), perplexity


class ImageDataset(Dataset):
    """uint8 (N, C, H, W) images; item i is a float (C, H, W) tensor in [-0.5, 0.5]."""

    def __init__(self, images_u8: torch.Tensor):
        self.images = images_u8

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index].float() / 255.0 - 0.5


def make_loaders(train_u8: torch.Tensor, val_u8: torch.Tensor, batch_size: int = 64,
                 num_workers: int = 2) -> tuple[DataLoader, DataLoader]:
    train_loader = DataLoader(ImageDataset(train_u8), batch_size=batch_size, shuffle=True,
                              num_workers=num_workers, drop_last=True)
    val_loader = DataLoader(ImageDataset(val_u8), batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return train_loader, val_loader


def train_epoch(model: Model, loader: DataLoader, optimizer: torch.optim.Optimizer,
                on_step: Optional[Callable[[], None]] = None) -> list[dict]:
    """One pass over ``loader``; returns the logged values of every step. ``on_step``: e.g. a profiler's step."""
    model.train()
    log = []
    for x in loader:
        optimizer.zero_grad()
        vq_loss, x_recon, perplexity = model(x)
        recon_error = F.mse_loss(x_recon, x)
        loss = recon_error + vq_loss
        loss.backward()
        optimizer.step()
        log.append({"loss": loss.item(), "recon_error": recon_error.item(), "perplexity": perplexity.item()})
        if on_step is not None:
            on_step()
    return log


@torch.no_grad()
def evaluate(model: Model, loader: DataLoader) -> float:
    """Mean squared reconstruction error over every pixel of the split (the [0, 1] pixel scale)."""
    model.eval()
    squared_error, count = 0.0, 0
    for x in loader:
        _, x_recon, _ = model(x)
        squared_error += F.mse_loss(x_recon, x, reduction="sum").item()
        count += x.numel()
    return squared_error / count
