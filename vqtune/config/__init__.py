"""Configuration: pydantic schemas, safe YAML loading, ``--set`` overrides."""

from pathlib import Path
from typing import Iterable, Optional

from vqtune.config._describe import describe
from vqtune.config._loading import apply_overrides, read_yaml, validate
from vqtune.config._train import DataConfig, ModelConfig, OptimConfig, QuantizerConfig, TrainConfig

__all__ = [
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "QuantizerConfig",
    "TrainConfig",
    "apply_overrides",
    "describe",
    "load_train_config",
    "read_yaml",
    "validate",
]


def load_train_config(path: Optional[Path] = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a training config from YAML (schema defaults when ``path`` is None) and apply ``--set`` overrides.

    >>> load_train_config(None, ["model.codebook_size=256"]).model.codebook_size
    256
    """
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides, TrainConfig)
    return validate(TrainConfig, data, str(path) if path is not None else "--set")
