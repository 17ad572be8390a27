"""From config to model and device, and back from a checkpoint to a model."""

from __future__ import annotations

from pathlib import Path

import torch

from vqtune.config import TrainConfig, validate
from vqtune.errors import ConfigError
from vqtune.models import QUANTIZERS, VQVAE, VQVAE2, Quantizer
from vqtune.train._checkpoint import fields_of, load_checkpoint


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when visible, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name} requested but no CUDA device is visible; use device: auto or cpu")
    return device


def build_quantizer(config: TrainConfig) -> Quantizer:
    """The quantizer the config's ``quantizer.kind`` names (:data:`vqtune.models.QUANTIZERS`), with its options."""
    q = config.quantizer
    return QUANTIZERS[q.kind].from_options(config.codebook_size, config.model.embedding_dim, **q.options())


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
