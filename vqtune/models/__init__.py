"""Models: the quantizers, the VQ-VAE and the priors over its codes (``priors/``). Imports neither Ray nor Optuna."""

from vqtune.models.priors import PRIORS, CodesPrior, GatedPixelCNN, Prior, TwoLevelPrior, make_prior
from vqtune.models.quantizers import (
    QUANTIZERS,
    CodeUsage,
    FiniteScalarQuantizer,
    Quantizer,
    QuantizerOutput,
    VectorQuantizer,
    perplexity_of,
)
from vqtune.models.vqvae import VQVAE, Decoder, Encoder, VQVAEOutput
from vqtune.models.vqvae2 import VQVAE2

__all__ = [
    "CodeUsage",
    "CodesPrior",
    "Decoder",
    "Encoder",
    "FiniteScalarQuantizer",
    "GatedPixelCNN",
    "PRIORS",
    "Prior",
    "QUANTIZERS",
    "Quantizer",
    "QuantizerOutput",
    "TwoLevelPrior",
    "VQVAE",
    "VQVAE2",
    "VQVAEOutput",
    "VectorQuantizer",
    "make_prior",
    "perplexity_of",
]
