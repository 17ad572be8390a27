"""Models: the vector quantizer and the VQ-VAE. Imports neither Ray nor Optuna."""

from vqtune.models.pixelcnn import GatedPixelCNN
from vqtune.models.quantizer import CodeUsage, QuantizerOutput, VectorQuantizer, perplexity_of
from vqtune.models.vqvae import VQVAE, Decoder, Encoder, VQVAEOutput

__all__ = [
    "CodeUsage",
    "Decoder",
    "Encoder",
    "GatedPixelCNN",
    "QuantizerOutput",
    "VQVAE",
    "VQVAEOutput",
    "VectorQuantizer",
    "perplexity_of",
]
