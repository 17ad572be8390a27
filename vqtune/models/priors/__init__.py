"""Priors over code grids: the :class:`Prior` protocol, the Gated PixelCNN, the two-level prior and the registry
of kinds. Imports neither Ray, Optuna nor the config."""

from vqtune.models.priors._fast_sampling import CachedSampler, LayerCache
from vqtune.models.priors._pixelcnn import GatedLayer, GatedPixelCNN
from vqtune.models.priors._protocol import CodesPrior, OneLevel, Prior, nll_of
from vqtune.models.priors._registry import PRIORS, make_prior
from vqtune.models.priors._two_level import TwoLevelPrior

__all__ = [
    "CachedSampler",
    "CodesPrior",
    "GatedLayer",
    "GatedPixelCNN",
    "LayerCache",
    "OneLevel",
    "PRIORS",
    "Prior",
    "TwoLevelPrior",
    "make_prior",
    "nll_of",
]
