"""From config to model and device, and back from a checkpoint to a model."""

from __future__ import annotations

from pathlib import Path

import torch

from vqtune.config import TrainConfig, validate
from vqtune.errors import ConfigError
from vqtune.models import VQVAE, VQVAE2, FiniteScalarQuantizer, VectorQuantizer
from vqtune.train._checkpoint import fields_of, load_checkpoint


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when visible, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name} requested but no CUDA device is visible; use device: auto or cpu")
    return device


def build_quantizer(config: TrainConfig) -> VectorQuantizer | FiniteScalarQuantizer:
    """The quantizer the config's ``quantizer.kind`` names, with its options."""
    q, dim = config.quantizer, config.model.embedding_dim
    if q.kind == "fsq":
        return FiniteScalarQuantizer(q.fsq_levels, dim)
    return VectorQuantizer(
        config.model.codebook_size, dim, beta=q.beta, ema=q.ema, decay=q.decay, eps=q.eps,
        dead_code_steps=q.dead_code_steps, kmeans_init=q.kmeans_init, codebook_dim=q.codebook_dim,
        normalize=q.normalize, estimator=q.estimator,
    )


def build_model(config: TrainConfig, in_channels: int) -> VQVAE | VQVAE2:
    m = config.model
    if m.levels == 2:
        return VQVAE2(in_channels, m.hidden, m.residual_hidden, m.residual_blocks, m.downsample, m.top_downsample,
                      m.embedding_dim, quantizer=build_quantizer(config), top_quantizer=build_quantizer(config))
    return VQVAE(
        in_channels=in_channels,
        hidden=m.hidden,
        residual_hidden=m.residual_hidden,
        residual_blocks=m.residual_blocks,
        downsample=m.downsample,
        embedding_dim=m.embedding_dim,
        quantizer=build_quantizer(config),
    )


def load_vqvae(path: Path, device: str | torch.device = "cpu") -> tuple[VQVAE, TrainConfig]:
    """The trained model in a checkpoint (eval mode) and the config it was trained with."""
    return vqvae_of(load_checkpoint(path, map_location=device), path, device)


def vqvae_of(state: dict, path: Path, device: str | torch.device = "cpu") -> tuple[VQVAE, TrainConfig]:
    """The model (eval mode) and config of a stage-1 checkpoint already read from ``path``."""
    with fields_of(path):
        config = validate(TrainConfig, state["config"], f"{path} (config)")
        model = build_model(config, in_channels=int(state["in_channels"]))
        model.load_state_dict(state["model"])
    return model.to(device).eval(), config
