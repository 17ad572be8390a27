"""Models: the quantizers, the VQ-VAE and the PixelCNN prior. Imports neither Ray nor Optuna."""

from vqtune.models.fsq import FiniteScalarQuantizer
from vqtune.models.pixelcnn import GatedPixelCNN
from vqtune.models.quantizer import CodeUsage, QuantizerOutput, VectorQuantizer, perplexity_of
from vqtune.models.two_level_prior import TwoLevelPrior
from vqtune.models.vqvae import VQVAE, Decoder, Encoder, VQVAEOutput
from vqtune.models.vqvae2 import VQVAE2

__all__ = [
    "CodeUsage",
    "Decoder",
    "Encoder",
    "FiniteScalarQuantizer",
    "GatedPixelCNN",
    "QuantizerOutput",
    "TwoLevelPrior",
    "VQVAE",
    "VQVAE2",
    "VQVAEOutput",
    "VectorQuantizer",
    "perplexity_of",
]
