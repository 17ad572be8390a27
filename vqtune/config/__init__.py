"""Configuration: pydantic schemas, safe YAML loading, ``--set`` overrides."""

from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from vqtune.config._conditions import active_params, resolve_when
from vqtune.config._data import (
    DATA_SOURCES,
    FashionMnistConfig,
    FolderConfig,
    SkimagePhotosConfig,
    SourceConfig,
    data_config,
)
from vqtune.config._describe import describe
from vqtune.config._loading import apply_overrides, read_yaml, set_path, validate
from vqtune.config._search import (
    DEFAULT_STORAGE,
    METRICS,
    PARAM_TYPES,
    STAGE1_METRICS,
    STAGE2_METRICS,
    CategoricalParam,
    Constraint,
    FloatParam,
    IntParam,
    PerplexityRule,
    SearchSpace,
    Storage,
)
from vqtune.config._data import DataConfig
from vqtune.config._prior import PRIOR_KINDS, PixelCNNPriorConfig, PriorConfig, prior_config
from vqtune.config._quantizer import QUANTIZER_KINDS, FSQConfig, QuantizerConfig, VQConfig, quantizer_config
from vqtune.config._train import ModelConfig, OptimConfig, TrainConfig

__all__ = [
    "DEFAULT_STORAGE",
    "STAGE1_METRICS",
    "STAGE2_METRICS",
    "CategoricalParam",
    "Constraint",
    "FSQConfig",
    "FloatParam",
    "IntParam",
    "Storage",
    "DATA_SOURCES",
    "DataConfig",
    "FashionMnistConfig",
    "FolderConfig",
    "ModelConfig",
    "OptimConfig",
    "PerplexityRule",
    "PRIOR_KINDS",
    "PixelCNNPriorConfig",
    "PriorConfig",
    "METRICS",
    "QUANTIZER_KINDS",
    "QuantizerConfig",
    "SearchSpace",
    "SkimagePhotosConfig",
    "SourceConfig",
    "TrainConfig",
    "VQConfig",
    "active_params",
    "apply_overrides",
    "data_config",
    "describe",
    "load_search_space",
    "load_train_config",
    "prior_config",
    "quantizer_config",
    "read_yaml",
    "resolve_when",
    "validate",
]


def load_train_config(path: Optional[Path] = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a training config from YAML (schema defaults when ``path`` is None) and apply ``--set`` overrides.

    >>> load_train_config(None, ["model.codebook_size=256"]).model.codebook_size
    256
    """
    if path is None:  # every value comes from --set
        return validate(TrainConfig, apply_overrides({}, overrides, TrainConfig), "--set")
    overrides = list(overrides)
    data = apply_overrides(read_yaml(path), overrides, TrainConfig)
    return validate(TrainConfig, data, str(path), overrides=overrides)


def load_search_space(
    path: Path, overrides: Iterable[str] = (), settings: Optional[Mapping[str, Any]] = None
) -> SearchSpace:
    """Read and validate a search-space file.

    ``overrides`` are ``dotted.key=value`` strings parsed as YAML (``base.optim.epochs=3``); ``settings`` are
    dotted keys with values taken as they are (command-line flags such as a storage URL).
    """
    overrides = list(overrides)
    data = apply_overrides(read_yaml(path), overrides, SearchSpace)
    for key, value in (settings or {}).items():
        set_path(data, key, value)
    return validate(SearchSpace, data, str(path), tags=PARAM_TYPES, overrides=overrides)
